"""monai_genesis.phantoms: synthetic volumes with real file formats for the tests and the demo.

Chest CT with nodules and LUNA16-style candidates (``chest_ct``), CT pulmonary angiography with
emboli (``ctpa``), abdominal CT with liver (``abdomen_ct``), brain MRI with BraTS labels
(``brain_mri``); ``writers`` saves them as NIfTI or MetaImage, ``geometry`` places them in the world.
"""
