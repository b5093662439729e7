"""monai_genesis.data"""
