"""Twelve Heads' server: the torch-free engine, head scoring, and (soon) the Flask app."""
