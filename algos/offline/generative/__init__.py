"""Generative offline algorithms: their shared pieces (``base``) and Diffusion-BC, Diffusion-QL, EDP, Consistency-BC/AC and FQL."""
