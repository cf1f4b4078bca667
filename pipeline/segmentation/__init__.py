"""The segmenter (clean -> features -> SOM -> neuron clusters), neuron clustering, segment descriptions, scoring."""
