"""`fleet demo`: an offline showcase with scripted agents on a sample project."""
