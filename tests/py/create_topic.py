"""Create a topic and wait until every partition has a leader.

Usage: create_topic.py --bootstrap HOST:PORT --topic NAME --partitions N [--config KEY=VALUE ...]
"""

from common import argument_parser, create_topic, log, run_main


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    config = dict(item.split("=", 1) for item in args.config)
    create_topic(args.bootstrap, args.topic, args.partitions, config)
    log(f"created {args.topic} with {args.partitions} partitions, config {config}")


if __name__ == "__main__":
    run_main(main)
