"""The Textual UI of pxetui. Imports the engine (`pxetui`); the engine never imports this."""
