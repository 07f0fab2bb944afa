"""The README's caller: talks to my_service."""

from daebus import DaebusCaller, RemoteError


def main() -> None:
    with DaebusCaller("my_service") as caller:
        print("get_status ->", caller.send_request("get_status", {"detail_level": "full"}))
        print("count_to   ->", caller.send_request("count_to", {"n": 4},
                                                    on_progress=lambda p: print("   progress", p)))
        try:
            caller.send_request("no_such_action", {})
        except RemoteError as exc:
            print(f"no_such_action -> {exc.code}: {exc}")
        caller.send_message("notifications", {"type": "alert", "message": "System temperature high"})


if __name__ == "__main__":
    main()
