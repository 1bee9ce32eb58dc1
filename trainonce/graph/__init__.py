"""trainonce.graph"""
