<?php
/*
 * A stand-in for orderbridge's POST /v1/orders, run with `php -S` by the PHP tests.
 * Its behaviour is read from $FAKE_DAEMON_STATE/mode at each request:
 *   accept  202 {"order_id":..,"accepted":true} for a correctly signed request, else 401
 *   down    503
 *   hang    answers nothing for 5 s (longer than the module's timeout)
 * Every request is appended to requests.jsonl with its headers, body and whether the
 * signature checked out. The check is written here again, independently of the module.
 */

$state = getenv('FAKE_DAEMON_STATE');
$secret = getenv('FAKE_DAEMON_SECRET');
$mode = trim((string)@file_get_contents($state . '/mode'));
$body = file_get_contents('php://input');
$id = $_SERVER['HTTP_WEBHOOK_ID'] ?? '';
$ts = $_SERVER['HTTP_WEBHOOK_TIMESTAMP'] ?? '';
$sig = $_SERVER['HTTP_WEBHOOK_SIGNATURE'] ?? '';
$key = base64_decode(substr($secret, strlen('whsec_')));
$expected = 'v1,' . base64_encode(hash_hmac('sha256', "$id.$ts.$body", $key, true));
$signed = $id !== '' && hash_equals($expected, $sig) && abs(time() - (int)$ts) <= 300;

file_put_contents($state . '/requests.jsonl', json_encode([
	'path' => $_SERVER['REQUEST_URI'], 'id' => $id, 'timestamp' => $ts, 'signed' => $signed,
	'content_type' => $_SERVER['CONTENT_TYPE'] ?? '', 'body' => $body, 'mode' => $mode,
]) . "\n", FILE_APPEND | LOCK_EX);

header('Content-Type: application/json');
if ($mode === 'hang') {
	sleep(5);
	exit;
}
if ($mode === 'down') {
	http_response_code(503);
	echo '{"error":"store_unavailable"}';
	exit;
}
if (!$signed) {
	http_response_code(401);
	echo '{"error":"bad_signature"}';
	exit;
}
$order = json_decode($body, true)['order'] ?? [];
http_response_code(202);
echo json_encode(['order_id' => (string)($order['id'] ?? ''), 'accepted' => true]);
