"""AWS Lambda event fixtures, one builder per trigger, in the shapes AWS documents.

Each builder returns the documented example event with the request's method, path, headers
and body put in; every other field keeps the example's value, so the handler sees what
AWS sends (mixed-case header names in payload 1.0, lower-case in 2.0, `multiValueHeaders`,
`requestContext` with `identity` or `http`, stage names...).

Sources (the example events are those pages' examples):
- API Gateway REST API, Lambda proxy integration (payload 1.0), "Input format of a Lambda
  function for proxy integration":
  https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
- API Gateway HTTP API, payload format 1.0 and 2.0, "Payload format version":
  https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
- Lambda function URLs, "Request payload format" (payload 2.0 with a function URL's
  `requestContext`): https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html
- Application Load Balancer targets, "Example Application Load Balancer Request Event":
  https://docs.aws.amazon.com/lambda/latest/dg/services-alb.html
"""

from __future__ import annotations

import base64
import copy
from typing import Any


def _body(body: bytes | str | None) -> tuple[str | None, bool]:
    """(the event's `body`, `isBase64Encoded`): text as is, bytes that are not UTF-8 base64."""
    if body is None:
        return None, False
    if isinstance(body, str):
        return body, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode(), True


_REST_V1: dict[str, Any] = {
    "resource": "/{proxy+}",
    "path": "/hello/world",
    "httpMethod": "POST",
    "headers": {
        "Accept": "*/*", "Accept-Encoding": "gzip, deflate", "cache-control": "no-cache",
        "CloudFront-Forwarded-Proto": "https", "CloudFront-Is-Desktop-Viewer": "true",
        "CloudFront-Is-Mobile-Viewer": "false", "CloudFront-Is-SmartTV-Viewer": "false",
        "CloudFront-Is-Tablet-Viewer": "false", "CloudFront-Viewer-Country": "US",
        "Content-Type": "application/json", "headerName": "headerValue",
        "Host": "gy415nuibc.execute-api.us-east-1.amazonaws.com",
        "Postman-Token": "9f583ef0-ed83-4a38-aef3-eb9ce3f7a57f",
        "User-Agent": "PostmanRuntime/2.4.5",
        "Via": "1.1 d98420743a69852491bbdea73f7680bd.cloudfront.net (CloudFront)",
        "X-Amz-Cf-Id": "pn-PWIJc6thYnZm5P0NMgOUglL1DYtl0gdeJky8tqsg8iS_sgsKD1A==",
        "X-Forwarded-For": "54.240.196.186, 54.182.214.83", "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    },
    "multiValueHeaders": {},  # filled from `headers` (the example repeats every header)
    "queryStringParameters": {"name": "me", "multivalueName": "me"},
    "multiValueQueryStringParameters": {"name": ["me"], "multivalueName": ["you", "me"]},
    "pathParameters": {"proxy": "hello/world"},
    "stageVariables": {"stageVariableName": "stageVariableValue"},
    "requestContext": {
        "accountId": "12345678912", "resourceId": "roq9wj", "stage": "testStage",
        "requestId": "deef4878-7910-11e6-8f14-25afc3e9ae33",
        "identity": {"cognitoIdentityPoolId": None, "accountId": None,
                     "cognitoIdentityId": None, "caller": None, "apiKey": None,
                     "sourceIp": "192.168.196.186", "cognitoAuthenticationType": None,
                     "cognitoAuthenticationProvider": None, "userArn": None,
                     "userAgent": "PostmanRuntime/2.4.5", "user": None},
        "resourcePath": "/{proxy+}", "httpMethod": "POST", "apiId": "gy415nuibc",
    },
    "body": "{\r\n\t\"a\": 1\r\n}",
    "isBase64Encoded": False,
}

_HTTP_V1: dict[str, Any] = {
    "version": "1.0",
    "resource": "/my/path",
    "path": "/my/path",
    "httpMethod": "GET",
    "headers": {"Header1": "value1", "Header2": "value2"},
    "multiValueHeaders": {"Header1": ["value1"], "Header2": ["value1", "value2"]},
    "queryStringParameters": {"parameter1": "value1", "parameter2": "value"},
    "multiValueQueryStringParameters": {"parameter1": ["value1", "value2"],
                                        "parameter2": ["value"]},
    "requestContext": {
        "accountId": "123456789012", "apiId": "id",
        "authorizer": {"claims": None, "scopes": None},
        "domainName": "id.execute-api.us-east-1.amazonaws.com", "domainPrefix": "id",
        "extendedRequestId": "request-id", "httpMethod": "GET",
        "identity": {"accessKey": None, "accountId": None, "caller": None,
                     "cognitoAuthenticationProvider": None, "cognitoAuthenticationType": None,
                     "cognitoIdentityId": None, "cognitoIdentityPoolId": None,
                     "principalOrgId": None, "sourceIp": "IP", "user": None,
                     "userAgent": "user-agent", "userArn": None},
        "path": "/my/path", "protocol": "HTTP/1.1", "requestId": "id=",
        "requestTime": "04/Mar/2020:19:15:17 +0000", "requestTimeEpoch": 1583349317135,
        "resourceId": None, "resourcePath": "/my/path", "stage": "$default",
    },
    "pathParameters": None,
    "stageVariables": None,
    "body": "Hello from Lambda!",
    "isBase64Encoded": False,
}

_HTTP_V2: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/my/path",
    "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=value",
    "cookies": ["cookie1", "cookie2"],
    "headers": {"header1": "value1", "header2": "value1,value2"},
    "queryStringParameters": {"parameter1": "value1,value2", "parameter2": "value"},
    "requestContext": {
        "accountId": "123456789012", "apiId": "api-id",
        "authorizer": {"jwt": {"claims": {"claim1": "value1", "claim2": "value2"},
                               "scopes": ["scope1", "scope2"]}},
        "domainName": "id.execute-api.us-east-1.amazonaws.com", "domainPrefix": "id",
        "http": {"method": "POST", "path": "/my/path", "protocol": "HTTP/1.1",
                 "sourceIp": "IP", "userAgent": "agent"},
        "requestId": "id", "routeKey": "$default", "stage": "$default",
        "time": "12/Mar/2020:19:03:58 +0000", "timeEpoch": 1583348638390,
    },
    "body": "Hello from Lambda",
    "pathParameters": {"parameter1": "value1"},
    "isBase64Encoded": False,
    "stageVariables": {"stageVariable1": "value1", "stageVariable2": "value2"},
}

_FUNCTION_URL: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/my/path",
    "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=value",
    "cookies": ["cookie1", "cookie2"],
    "headers": {"header1": "value1", "header2": "value1,value2"},
    "queryStringParameters": {"parameter1": "value1,value2", "parameter2": "value"},
    "requestContext": {
        "accountId": "123456789012", "apiId": "<urlid>", "authentication": None,
        "authorizer": {"iam": {"accessKey": "AKIA...", "accountId": "111122223333",
                               "callerId": "AIDA...", "cognitoIdentity": None,
                               "principalOrgId": None,
                               "userArn": "arn:aws:iam::111122223333:user/example-user",
                               "userId": "AIDA..."}},
        "domainName": "<url-id>.lambda-url.us-west-2.on.aws", "domainPrefix": "<url-id>",
        "http": {"method": "POST", "path": "/my/path", "protocol": "HTTP/1.1",
                 "sourceIp": "123.123.123.123", "userAgent": "agent"},
        "requestId": "id", "routeKey": "$default", "stage": "$default",
        "time": "12/Mar/2020:19:03:58 +0000", "timeEpoch": 1583348638390,
    },
    "body": "Hello from client!",
    "pathParameters": None,
    "isBase64Encoded": False,
    "stageVariables": None,
}


def _merge(headers: dict[str, Any], given: dict[str, Any] | None) -> None:
    """`given` into `headers`, replacing any header of the same name in another case."""
    for name, value in (given or {}).items():
        for old in [k for k in headers if k.lower() == name.lower()]:
            del headers[old]
        headers[name] = value


_ALB: dict[str, Any] = {
    "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-2:"
                               "123456789012:targetgroup/lambda-279XGJDqGZ5rsrHC2Fjr/"
                               "49e9d65c45c6791a"}},
    "httpMethod": "GET",
    "path": "/lambda",
    "queryStringParameters": {"query": "1234ABCD"},
    "headers": {
        "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,"
                  "image/apng,*/*;q=0.8",
        "accept-encoding": "gzip", "accept-language": "en-US,en;q=0.9",
        "connection": "keep-alive", "host": "lambda-alb-123578498.us-east-2.elb.amazonaws.com",
        "upgrade-insecure-requests": "1",
        "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
                      "like Gecko) Chrome/71.0.3578.98 Safari/537.36",
        "x-amzn-trace-id": "Root=1-5c536348-3d683b8b04734faae651f476",
        "x-forwarded-for": "72.12.164.125", "x-forwarded-port": "80",
        "x-forwarded-proto": "http", "x-imforwards": "20",
    },
    "body": "",
    "isBase64Encoded": False,
}


def rest_api(method: str, path: str, body: bytes | str | None = None,
             headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway REST API proxy event (payload 1.0) for `method` `path`."""
    event = copy.deepcopy(_REST_V1)
    event["path"], event["httpMethod"] = path, method
    event["requestContext"]["httpMethod"] = method
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    _merge(event["headers"], headers)
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    event["body"], event["isBase64Encoded"] = _body(body)
    return event


def http_api_v1(method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API event in payload format 1.0 for `method` `path`."""
    event = copy.deepcopy(_HTTP_V1)
    event["path"] = event["resource"] = event["requestContext"]["path"] = path
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    _merge(event["headers"], headers)
    _merge(event["multiValueHeaders"], {k: [v] for k, v in (headers or {}).items()})
    event["body"], event["isBase64Encoded"] = _body(body)
    return event


def _v2(template: dict[str, Any], method: str, path: str, body: bytes | str | None,
        headers: dict[str, str] | None) -> dict[str, Any]:
    event = copy.deepcopy(template)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
    event["body"], event["isBase64Encoded"] = _body(body)
    if event["body"] is None:
        del event["body"]  # a request without a body has no `body` key
    return event


def http_api(method: str, path: str, body: bytes | str | None = None,
             headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API event in payload format 2.0 for `method` `path`."""
    return _v2(_HTTP_V2, method, path, body, headers)


def function_url(method: str, path: str, body: bytes | str | None = None,
                 headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A Lambda function URL event (payload 2.0) for `method` `path`."""
    return _v2(_FUNCTION_URL, method, path, body, headers)


def alb(method: str, path: str, body: bytes | str | None = None,
        headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An Application Load Balancer target group event for `method` `path`."""
    event = copy.deepcopy(_ALB)
    event["httpMethod"], event["path"] = method, path
    _merge(event["headers"], {k.lower(): v for k, v in (headers or {}).items()})
    event["body"], event["isBase64Encoded"] = _body(body)
    event["body"] = event["body"] or ""  # the example sends "" for no body
    return event


#: Every HTTP trigger, by name.
TRIGGERS = {"rest_api": rest_api, "http_api_v1": http_api_v1, "http_api": http_api,
            "function_url": function_url, "alb": alb}


def response_body(answer: dict[str, Any]) -> bytes:
    """The HTTP body a trigger's answer carries (base64-decoded when so marked)."""
    body = answer.get("body") or ""
    return base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()


def response_headers(answer: dict[str, Any]) -> dict[str, str]:
    """A trigger's answer's headers by lower-case name (`multiValueHeaders` joined)."""
    found = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
    found.update({k.lower(): ",".join(v) for k, v in (answer.get("multiValueHeaders") or {}).items()})
    return found
