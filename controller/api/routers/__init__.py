"""The REST API's routes, one router per resource (``controller.api.app`` includes them all)."""
