"""Virtual files for TFTP/HTTP: generated menus, boot loaders, files inside imported ISOs."""
