# The 0.0.x README's usage examples (hello world, direct_logger, cross-service,
# thread-safe counter, long-running thread) in one service.
import threading
import time

from daebus import Daebus, DaebusCaller, direct_logger, request, response, logger

app = Daebus(__name__, max_workers=20)

@app.action("hello_world")
def hello_world():
    name = request.payload.get("name", "World")
    logger.info(f"Received request from {name}")
    return response.success({"message": f"Hello, {name}!"})

@app.background("periodic_task", interval=60)
def run_periodic_task():
    try:
        # Do some work
        direct_logger.info("Periodic task completed")
    except Exception as e:
        # Always use direct_logger in background tasks
        direct_logger.error(f"Error in periodic task: {e}")

# Create a caller for another service
other_service = DaebusCaller("other-service")

@app.on_start()
def initialize():
    direct_logger.info("Notifying other services that we've started")
    try:
        # Send a message to another service
        result = other_service.send_message("service_started", {
            "service_name": "my-service",
            "timestamp": time.time()
        })
        direct_logger.info(f"Notification sent, response: {result}")
    except Exception as e:
        direct_logger.error(f"Failed to send notification: {e}")

# Thread-safe counter using a lock
request_counter = 0
counter_lock = threading.Lock()

@app.action("increment")
def increment_counter():
    global request_counter

    # Use a lock to safely update shared state
    with counter_lock:
        request_counter += 1
        current_count = request_counter

    return response.success({"count": current_count})

@app.thread("long_running")
def background_processor(running):
    while running():
        try:
            # Process something
            time.sleep(0.05)
        except Exception as e:
            # Always use direct_logger for thread-safe logging
            direct_logger.error(f"Error in background processor: {e}")

if __name__ == "__main__":
    app.run(service='my-service')
