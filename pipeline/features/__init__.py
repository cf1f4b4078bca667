"""Cleaned transactions -> units (transactions or customers) -> the scaled feature matrix the SOM trains on."""
