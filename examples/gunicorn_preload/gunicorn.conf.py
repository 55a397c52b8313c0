"""gunicorn settings for app.py (gunicorn reads ./gunicorn.conf.py by default). See app.py on fork safety."""

wsgi_app = "app:app"
bind = "127.0.0.1:8000"
workers = 2

# Import app.py, and so create and start the Experiment client, once in the master, then fork the
# workers: faster worker start-up and one flag download instead of one per worker. The client
# reinitialises itself in each worker; no post_fork hook is needed.
preload_app = True
