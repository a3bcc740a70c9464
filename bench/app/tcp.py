"""A minimal TCP service for benchmarks: every line read is answered with the version."""

import asyncio
import os

ANSWER = os.environ.get("APP_VERSION", "1").encode() + b"\n"


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.readline():
            writer.write(ANSWER)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(
        serve, os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])
    )
    await server.serve_forever()


asyncio.run(main())
