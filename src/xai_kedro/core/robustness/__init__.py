"""Distribution shifts applied to test images and the OOD stage that scores every adapter under them."""
