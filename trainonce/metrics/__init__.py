"""trainonce.metrics"""
