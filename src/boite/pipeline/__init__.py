"""Pipeline: plan and run the project's steps, incrementally; the Project API."""
