"""The operator console: the dashboard's data (journeys, views, live feed) and its access rules."""
