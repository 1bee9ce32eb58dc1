"""trainonce.cli"""
