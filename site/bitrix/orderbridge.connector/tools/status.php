<?php
/*
 * HTTP entry of the status endpoint (two-way sync): orderbridge POSTs here to set an
 * order's status or cancel flag and to tell it its Bitrix24 deal. The installer puts a
 * one-line proxy at /bitrix/tools/orderbridge/status.php that includes this file.
 * Everything but HTTP plumbing is in lib/StatusEndpoint.php.
 */

define('NO_KEEP_STATISTIC', true);
define('NOT_CHECK_PERMISSIONS', true); // the signature is the permission check
define('STOP_STATISTICS', true);
define('NO_AGENT_CHECK', true);
define('PUBLIC_AJAX_MODE', true);
define('DisableEventsCheck', true);

require $_SERVER['DOCUMENT_ROOT'] . '/bitrix/modules/main/include/prolog_before.php';

$answer = function (int $code, array $payload) {
	while (ob_get_level() > 0) {
		ob_end_clean();
	}
	http_response_code($code);
	header('Content-Type: application/json; charset=utf-8');
	header('Cache-Control: no-store');
	echo json_encode($payload, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES);
	exit;
};

try {
	if (!\Bitrix\Main\Loader::includeModule('orderbridge.connector') || !\Bitrix\Main\Loader::includeModule('sale')) {
		$answer(503, ['error' => 'module_missing']);
	}
	$headers = [];
	foreach (['webhook-id', 'webhook-timestamp', 'webhook-signature'] as $name) {
		$key = 'HTTP_' . strtoupper(str_replace('-', '_', $name));
		$headers[$name] = (string)($_SERVER[$key] ?? '');
	}
	$body = (string)file_get_contents('php://input', false, null, 0, \Orderbridge\StatusEndpoint::MAX_BODY + 1);
	$endpoint = new \Orderbridge\StatusEndpoint(\Orderbridge\Config::load());
	[$code, $payload] = $endpoint->handle((string)($_SERVER['REQUEST_METHOD'] ?? ''), $headers, $body);
	$answer($code, $payload);
} catch (\Throwable $e) {
	if (class_exists('\Orderbridge\Log')) {
		\Orderbridge\Log::error('status endpoint failed: ' . $e->getMessage());
	}
	$answer(500, ['error' => 'internal']);
}
