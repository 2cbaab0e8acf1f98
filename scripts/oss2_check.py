#!/usr/bin/env python3
"""Uploads one file to an OSS-compatible endpoint with the official Aliyun SDK (oss2).

Used by the alti-emulator tests to prove the emulator's OSS storage agrees with the real SDK: its
signatures (V1, V4), and with --multipart its multipart upload and CRC-64 (oss2's Bucket checks
x-oss-hash-crc64ecma of every part and of the completed object; enable_crc=True is its default).
Credentials come from the environment (never argv, never printed):
  OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_SECURITY_TOKEN
Usage:
  oss2_check.py --endpoint http://127.0.0.1:PORT --bucket B --key PID/NAME --file PATH
                [--version v1|v4] [--region cn-shenzhen] [--content-type image/jpeg]
                [--multipart PART_SIZE]
Prints one JSON line: {"status": 200, "code": null, "etag": "...", "crc": N} or
{"status": 403, "code": "..."}; a CRC that oss2 finds inconsistent with what it sent is
{"status": null, "code": "InconsistentError"}.
Exit codes: 0 = got an answer (success, an OSS error or a CRC mismatch), 3 = oss2 missing,
4 = transport failure.
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


def multipart_upload(bucket, key, data, part_size, content_type):
    """The three calls as a client makes them. Each PartInfo carries the part's size and the CRC
    oss2 computed locally, so complete_multipart_upload checks the object's CRC the server answers
    against the CRCs of the bytes sent, not against the server's own part CRCs."""
    upload_id = bucket.init_multipart_upload(key, headers={"Content-Type": content_type}).upload_id
    parts = []
    for number, start in enumerate(range(0, len(data), part_size), start=1):
        chunk = data[start:start + part_size]
        result = bucket.upload_part(key, upload_id, number, chunk)
        local = oss2.utils.Crc64(0)
        local.update(chunk)
        parts.append(oss2.models.PartInfo(number, result.etag, size=len(chunk), part_crc=local.crc))
    return bucket.complete_multipart_upload(key, upload_id, parts)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--version", choices=["v1", "v4"], default="v1")
    parser.add_argument("--region", default="cn-shenzhen")
    parser.add_argument("--content-type", default="image/jpeg")
    parser.add_argument("--multipart", type=int, metavar="PART_SIZE",
                        help="init_multipart_upload, upload_part per PART_SIZE bytes, complete_multipart_upload")
    args = parser.parse_args()

    auth = oss2.StsAuth(os.environ["OSS_ACCESS_KEY_ID"], os.environ["OSS_ACCESS_KEY_SECRET"],
                        os.environ["OSS_SECURITY_TOKEN"], auth_version=args.version)
    region = args.region if args.version == "v4" else None
    bucket = oss2.Bucket(auth, args.endpoint, args.bucket, region=region, connect_timeout=10)
    with open(args.file, "rb") as f:
        data = f.read()
    try:
        if args.multipart:
            result = multipart_upload(bucket, args.key, data, args.multipart, args.content_type)
        else:
            result = bucket.put_object(args.key, data, headers={"Content-Type": args.content_type})
        print(json.dumps({"status": result.status, "code": None, "etag": result.etag, "crc": result.crc}))
    except oss2.exceptions.InconsistentError:
        # oss2's own CRC check: the x-oss-hash-crc64ecma answered is not the CRC of what it sent.
        print(json.dumps({"status": None, "code": "InconsistentError"}))
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
