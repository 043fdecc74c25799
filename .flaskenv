# `flask run` in this folder serves Twelve Heads (Flask reads this file through python-dotenv).
# Flask's server is for development and a lab: `twelve-heads serve` (gunicorn) is for a class.
FLASK_APP=twelve_heads.server:create_app
