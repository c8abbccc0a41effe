"""Integrations with web frameworks: vigil.contrib.flask, vigil.contrib.django.

Each module imports its framework only when used, so that importing vigil
never requires one.
"""
