"""Demo: log every object change it is told about."""

import logging
from urllib.parse import unquote_plus

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handle(event, context):
    for record in event.get("Records", []):
        key = unquote_plus(record["s3"]["object"]["key"])
        logger.info("%s s3://%s/%s", record["eventName"], record["s3"]["bucket"]["name"], key)
    return {"audited": len(event.get("Records", []))}
