#!/usr/bin/env python3
"""Contract check: InvokeEndpoint as boto3 sees it from moto_server and from our test server.

  moto_invoke_check.py [--sagemaker-url URL] [--json FILE]

Starts moto_server (moto 5.x, `moto_server -H 127.0.0.1 -p PORT`, else
`python3 -m moto.server`) on a free port, and tests/tools/sagemaker_server.py
unless --sagemaker-url names a running one (keys test/test, region us-east-1).
Each case sends the same boto3 invoke_endpoint request to both, with the same
scripted model answer: on moto through its moto-api
(POST /moto-api/static/sagemaker/endpoint-results, a queue of
{Body, ContentType, InvokedProductionVariant, CustomAttributes}), on ours
through POST /control. It prints, per case, each field the client sees
(status, content type, body, variant, custom attributes, response headers)
side by side, and whether it matches.

The contract cases (a scripted answer passed through) must agree: exit 1 if
they do not. The other cases show where the two differ on purpose (moto checks
no signatures, caches answers per identical request, has no size limit and no
faults; our server echoes by default) and are reported, not failed.
Needs a python3 with moto[server] and boto3 (the machine image's python3).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

try:
    import boto3
    import botocore
    import botocore.exceptions
    from botocore.config import Config
except ImportError as e:
    print("SKIP: boto3 is not importable by %s: %s" % (sys.executable, e))
    sys.exit(3)

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_HEADERS = {"date", "server", "content-length", "connection", "x-amzn-requestid", "keep-alive"}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url, secs=30, proc=None):
    end = time.time() + secs
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer: it is up
        except OSError:
            if proc is not None and proc.poll() is not None:
                return False
            time.sleep(0.1)
    return False


def start_moto(tmp):
    port = free_port()
    exe = [p for p in (os.path.join(os.path.dirname(sys.executable), "moto_server"),) if os.access(p, os.X_OK)]
    cmd = exe + ["-H", "127.0.0.1", "-p", str(port)] if exe else \
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    log = open(os.path.join(tmp, "moto.log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    if not wait_http(url + "/moto-api/", proc=proc):
        proc.kill()
        sys.exit("moto_server did not come up; see %s/moto.log" % tmp)
    return proc, url


def start_ours(tmp):
    ready = os.path.join(tmp, "sm.ready")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "sagemaker_server.py"), "--port", "0",
                             "--ready-file", ready], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    for _ in range(300):
        if os.path.exists(ready):
            with open(ready) as f:
                return proc, f.read().strip().split("=", 1)[1]
        time.sleep(0.05)
    proc.kill()
    sys.exit("sagemaker_server.py did not come up")


def post_json(url, obj):
    req = urllib.request.Request(url, data=json.dumps(obj).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


def client(url, secret="test"):
    return boto3.session.Session().client(
        "sagemaker-runtime", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
        aws_secret_access_key=secret, config=Config(retries={"total_max_attempts": 1}, read_timeout=20))


def seen(c, **kwargs):
    """What the boto3 client sees for one invoke_endpoint call."""
    try:
        r = c.invoke_endpoint(**kwargs)
    except botocore.exceptions.ClientError as e:
        md = e.response["ResponseMetadata"]
        return dict({"status": md["HTTPStatusCode"], "error": e.response["Error"]["Code"],
                     "exception": type(e).__name__}, **header_sets(md["HTTPHeaders"]))
    md = r["ResponseMetadata"]
    body = r["Body"].read()
    try:
        shown = body.decode("utf-8")
    except UnicodeDecodeError:
        shown = "<%d bytes>" % len(body)
    return {"status": md["HTTPStatusCode"], "content_type": r.get("ContentType"), "body": shown,
            "variant": r.get("InvokedProductionVariant"), "custom_attributes": r.get("CustomAttributes"),
            **header_sets(md["HTTPHeaders"])}


def header_sets(headers):
    """The response header names the API defines (content-type, x-amz*), and the rest."""
    names = set(headers) - SERVER_HEADERS
    api = sorted(n for n in names if n == "content-type" or n.startswith("x-amz"))
    return {"headers": api, "other_headers": sorted(names - set(api))}


def moto_script(moto_url, results):
    status, _ = post_json(moto_url + "/moto-api/static/sagemaker/endpoint-results",
                          {"account_id": "123456789012", "region": "us-east-1", "results": results})
    assert status == 201, status


def ours_script(url, endpoint, items, variant="AllTraffic"):
    post_json(url + "/control", {"endpoint": endpoint, "variant": variant, "script": items})


def compare(name, moto, ours, contract, note=""):
    print("\n== %s%s" % (name, " (contract)" if contract else ""))
    if note:
        print("   " + note)
    keys = sorted(set(moto) | set(ours), key=lambda k: ["status", "error", "exception", "content_type", "body",
                                                        "variant", "custom_attributes", "headers",
                                                        "other_headers"].index(k))
    diffs = []
    for k in keys:
        m, o = moto.get(k), ours.get(k)
        same = m == o
        if not same and k != "other_headers":  # CORS and such: not part of the API
            diffs.append(k)
        fm, fo = json.dumps(m), json.dumps(o)
        if len(fm) > 100:
            fm = fm[:97] + "..."
        if len(fo) > 100:
            fo = fo[:97] + "..."
        print("   %-18s %-4s moto: %s\n   %-18s      ours: %s" % (k, "same" if same else "DIFF", fm, "", fo))
    return {"case": name, "contract": contract, "moto": moto, "ours": ours, "differences": diffs, "note": note}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sagemaker-url", help="a running sagemaker_server.py (else one is started)")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()
    try:
        import moto  # noqa: F401
        moto_version = moto.__version__
    except ImportError:
        print("SKIP: moto is not importable by %s (pip install 'moto[server]')" % sys.executable)
        sys.exit(3)
    tmp = tempfile.mkdtemp(prefix="moto-invoke.")
    procs = []
    try:
        mproc, moto_url = start_moto(tmp)
        procs.append(mproc)
        if a.sagemaker_url:
            ours_url = a.sagemaker_url.rstrip("/")
        else:
            oproc, ours_url = start_ours(tmp)
            procs.append(oproc)
        print("moto %s at %s; sagemaker_server.py at %s; boto3 %s (botocore %s)"
              % (moto_version, moto_url, ours_url, boto3.__version__, botocore.__version__))
        cm, co = client(moto_url), client(ours_url)
        tag = str(os.getpid())
        results = []

        # 1. A scripted JSON answer passes through.
        answer = {"Body": '{"vector": [0.25, -0.5], "label": "cat"}', "ContentType": "application/json",
                  "InvokedProductionVariant": "variant-1", "CustomAttributes": "trace=7"}
        moto_script(moto_url, [answer])
        ours_script(ours_url, "json-" + tag, [{"status": 200, "body": answer["Body"], "content_type": "application/json",
                                               "custom_attributes": "trace=7"}], variant="variant-1")
        req = dict(Body=b'{"inputs": "a cat"}', ContentType="application/json", Accept="application/json",
                   CustomAttributes="req=1")
        results.append(compare("scripted JSON answer", seen(cm, EndpointName="json-" + tag, **req),
                               seen(co, EndpointName="json-" + tag, **req), True))

        # 2. A text answer with non-ASCII characters and its own content type.
        answer = {"Body": "grüße, 世界\n", "ContentType": "text/plain; charset=utf-8",
                  "InvokedProductionVariant": "AllTraffic", "CustomAttributes": "lang=de"}
        moto_script(moto_url, [answer])
        ours_script(ours_url, "text-" + tag, [{"status": 200, "body": answer["Body"], "content_type": answer["ContentType"],
                                               "custom_attributes": "lang=de"}])
        req = dict(Body="ein Text".encode(), ContentType="text/plain")
        results.append(compare("scripted text answer (UTF-8)", seen(cm, EndpointName="text-" + tag, **req),
                               seen(co, EndpointName="text-" + tag, **req), True))

        # 3. All the request headers InvokeEndpoint has.
        answer = {"Body": "[1, 2, 3]", "ContentType": "application/json", "InvokedProductionVariant": "blue",
                  "CustomAttributes": "c=1"}
        moto_script(moto_url, [answer])
        ours_script(ours_url, "hdr-" + tag, [{"status": 200, "body": "[1, 2, 3]", "content_type": "application/json",
                                              "custom_attributes": "c=1"}])
        req = dict(Body=b"[0]", ContentType="application/json", Accept="application/json", CustomAttributes="c=0",
                   TargetModel="m1.tar.gz", TargetVariant="blue", InferenceId="inf-9")
        results.append(compare("every request header (TargetModel, TargetVariant, InferenceId)",
                               seen(cm, EndpointName="hdr-" + tag, **req), seen(co, EndpointName="hdr-" + tag, **req),
                               True))

        # 4. Nothing scripted: each server's default answer.
        req = dict(Body=b'{"inputs": "default"}', ContentType="application/json", CustomAttributes="x=1")
        results.append(compare("nothing scripted (defaults)", seen(cm, EndpointName="dflt-" + tag, **req),
                               seen(co, EndpointName="dflt-" + tag, **req), False,
                               "moto answers fixed placeholder strings; ours echoes the request as JSON and "
                               "returns the request's custom attributes"))

        # 5. The same request twice, with two different answers scripted.
        moto_script(moto_url, [{"Body": "first", "ContentType": "text/plain"},
                               {"Body": "second", "ContentType": "text/plain"}])
        ours_script(ours_url, "twice-" + tag, [{"status": 200, "body": "first", "content_type": "text/plain"},
                                               {"status": 200, "body": "second", "content_type": "text/plain"}])
        req = dict(Body=b"same", ContentType="text/plain")
        m = [seen(cm, EndpointName="twice-" + tag, **req)["body"] for _ in range(2)]
        o = [seen(co, EndpointName="twice-" + tag, **req)["body"] for _ in range(2)]
        seen(cm, EndpointName="drain-" + tag, Body=b"drain")  # the unused "second" stays queued in moto
        results.append(compare("identical request twice", {"body": m}, {"body": o}, False,
                               "moto caches the answer per identical request (endpoint, headers, body); "
                               "ours takes the next scripted answer"))

        # 6. Wrong secret.
        req = dict(Body=b"{}", ContentType="application/json")
        results.append(compare("signed with the wrong secret", seen(client(moto_url, "wrong"), EndpointName="sig-" + tag, **req),
                               seen(client(ours_url, "wrong"), EndpointName="sig-" + tag, **req), False,
                               "moto checks no signatures"))

        # 7. Over the 6 MB payload limit.
        req = dict(Body=b"x" * (6 * 1024 * 1024 + 1), ContentType="application/octet-stream")
        mm, oo = seen(cm, EndpointName="big-" + tag, **req), seen(co, EndpointName="big-" + tag, **req)
        mm.pop("body", None)
        results.append(compare("body of 6 MB + 1 byte", mm, oo, False, "moto has no size limit"))

        # 8. A fault: only ours can script one.
        ours_script(ours_url, "fault-" + tag, [{"model_error": 500, "message": "boom"}])
        req = dict(Body=b"{}", ContentType="application/json")
        results.append(compare("scripted ModelError", seen(cm, EndpointName="fault-" + tag, **req),
                               seen(co, EndpointName="fault-" + tag, **req), False,
                               "moto injects no errors (its queue holds only successful answers)"))

        bad = [r for r in results if r["contract"] and r["differences"]]
        print("\nsummary: %d cases; contract cases %s; differences elsewhere: %s" % (
            len(results), "all the same" if not bad else "DIFFER in " + ", ".join(
                "%s (%s)" % (r["case"], ", ".join(r["differences"])) for r in bad),
            "; ".join("%s: %s" % (r["case"], ", ".join(r["differences"])) for r in results
                      if not r["contract"] and r["differences"]) or "none"))
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"moto": moto_version, "botocore": botocore.__version__, "results": results}, f, indent=1)
        sys.exit(1 if bad else 0)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
