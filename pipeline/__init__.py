"""Customer segmentation on retail transactions with somtorch."""
