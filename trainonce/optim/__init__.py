"""trainonce.optim"""
