"""trainonce.construct"""
