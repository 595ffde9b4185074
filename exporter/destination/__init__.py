"""The destination: where an export lands and how it is kept whole.

Files and their sidecars, the index of done images, safe paths, the run lock, the
content check of a download, and `verify`. Nothing here talks to the portal.
"""
