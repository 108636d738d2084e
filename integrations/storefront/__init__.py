"""The storefront snippet (nudge.js), shipped as package data and served at /static/nudge.js."""
