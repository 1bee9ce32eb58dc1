"""trainonce.groups"""
