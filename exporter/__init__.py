"""b24-image-exporter: back up Bitrix24 catalog product images."""

__version__ = "0.1.0"
