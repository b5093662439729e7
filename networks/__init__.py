"""monai_genesis.networks"""
