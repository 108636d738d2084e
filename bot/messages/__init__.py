"""Message kinds rendered into localized text and keyboards."""
