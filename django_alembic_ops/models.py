# Intentionally empty: Django sends ``post_migrate`` only to apps that have a
# models module, and the ``migrate`` integration listens to that signal.
