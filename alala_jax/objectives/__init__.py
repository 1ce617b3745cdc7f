"""Objectives: the beta-VAE loss of paper 000 and its schedules."""
