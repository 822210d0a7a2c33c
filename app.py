"""The Chalice app: created here, everything else registered from chalicelib.api."""

from chalice import Chalice

from chalicelib.api import http, markets, pages, streams, websocket, workers
from chalicelib.api.fallback import complete_routes
from chalicelib.config import get_settings
from chalicelib.logs import configure_logging, lambda_context_middleware

app = Chalice(app_name="order-engine", configure_logs=False)  # chalicelib/logs.py configures them
app.experimental_feature_flags.update(["WEBSOCKETS"])
configure_logging(app, get_settings().log_level)
app.register_middleware(lambda_context_middleware, "all")  # every handler's lines carry its Lambda context
app.register_blueprint(http.bp)
app.register_blueprint(pages.bp)
app.register_blueprint(workers.bp)
app.register_blueprint(streams.bp)
app.register_blueprint(markets.bp)

# WebSocket handlers are registered on the app itself (see chalicelib/api/websocket.py).
ws_connect = app.on_ws_connect()(websocket.ws_connect)
ws_message = app.on_ws_message()(websocket.ws_message)
ws_disconnect = app.on_ws_disconnect()(websocket.ws_disconnect)

# Last, once every route is registered: HEAD where GET is, 405 for other methods, Chalice's errors reshaped.
complete_routes(app)
