"""HTTP service: files, byte ranges inside .iso images, iPXE scripts and boot callbacks."""
