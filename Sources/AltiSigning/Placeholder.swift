import AltiCrypto
