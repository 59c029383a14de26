//! HTTP-level tests of the layer: the rules of a request, over real TCP.
