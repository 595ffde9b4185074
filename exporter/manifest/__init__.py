"""The manifest: which products and images to export, in the formats read and written."""
