"""monai_genesis.transforms"""
