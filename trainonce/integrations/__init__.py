"""trainonce.integrations"""
