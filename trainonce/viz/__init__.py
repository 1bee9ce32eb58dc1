"""trainonce.viz"""
