#!/usr/bin/env python3
"""Uploads one file to an OSS-compatible endpoint with the official Aliyun SDK (oss2).

Used by the alti-emulator tests to prove the emulator's OSS verifier agrees with the real
signer. Credentials come from the environment (never argv, never printed):
  OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_SECURITY_TOKEN
Usage:
  oss2_check.py --endpoint http://127.0.0.1:PORT --bucket B --key PID/NAME --file PATH
                [--version v1|v4] [--region cn-shenzhen] [--content-type image/jpeg]
Prints one JSON line: {"status": 200, "code": null, "etag": "..."} or {"status": 403, "code": "..."}.
Exit codes: 0 = got an answer (success or an OSS error), 3 = oss2 missing, 4 = transport failure.
"""
import argparse
import json
import os
import sys

try:
    import oss2
except ImportError:
    print("python3 has no oss2 package: pip install oss2 (CI does, via scripts/bootstrap --test)")
    sys.exit(3)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--version", choices=["v1", "v4"], default="v1")
    parser.add_argument("--region", default="cn-shenzhen")
    parser.add_argument("--content-type", default="image/jpeg")
    args = parser.parse_args()

    auth = oss2.StsAuth(os.environ["OSS_ACCESS_KEY_ID"], os.environ["OSS_ACCESS_KEY_SECRET"],
                        os.environ["OSS_SECURITY_TOKEN"], auth_version=args.version)
    region = args.region if args.version == "v4" else None
    bucket = oss2.Bucket(auth, args.endpoint, args.bucket, region=region, connect_timeout=10)
    with open(args.file, "rb") as f:
        data = f.read()
    try:
        result = bucket.put_object(args.key, data, headers={"Content-Type": args.content_type})
        print(json.dumps({"status": result.status, "code": None, "etag": result.etag}))
    except oss2.exceptions.ServerError as e:
        if e.status >= 400 and e.code:
            print(json.dumps({"status": e.status, "code": e.code}))
        else:
            print(json.dumps({"status": e.status, "code": None, "transport": str(e.details)[:200]}))
            sys.exit(4)
    except oss2.exceptions.RequestError as e:
        print(json.dumps({"status": None, "code": None, "transport": str(e)[:200]}))
        sys.exit(4)


if __name__ == "__main__":
    main()
