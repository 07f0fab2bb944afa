"""What runs a service: the runtime (the container), its components and
their lifecycle, the intakes that read requests off the bus (owner and
group), the worker pool, the event loop for ``async def`` handlers, the
scheduler and app threads, and worker files."""
