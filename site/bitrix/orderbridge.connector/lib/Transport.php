<?php
/*
 * One HTTP POST with a hard deadline: connect + send + answer within the timeout (≤ 2 s),
 * because it runs inside the buyer's checkout request. ext/curl when loaded, else PHP's
 * http stream wrapper. Never throws: a network failure is status 0 with an error text.
 * The answer body is capped, since only short JSON answers are expected.
 */

namespace Orderbridge;

class Transport
{
	public const MAX_ANSWER = 65536;

	/** @var float */
	private $timeout;
	/** @var string 'curl' or 'stream' */
	private $kind;

	public function __construct(float $timeout = Config::MAX_TIMEOUT, ?string $kind = null)
	{
		$this->timeout = min($timeout, Config::MAX_TIMEOUT);
		$this->kind = $kind ?? (extension_loaded('curl') ? 'curl' : 'stream');
	}

	/**
	 * @param array $headers name => value
	 * @return array{0:int,1:string,2:string} [HTTP status or 0, answer body, error text]
	 */
	public function post(string $url, array $headers, string $body): array
	{
		$lines = ['Content-Type: application/json'];
		foreach ($headers as $name => $value) {
			$lines[] = $name . ': ' . $value;
		}
		try {
			return $this->kind === 'curl'
				? $this->postCurl($url, $lines, $body)
				: $this->postStream($url, $lines, $body);
		} catch (\Throwable $e) {
			return [0, '', $e->getMessage()];
		}
	}

	private function postCurl(string $url, array $lines, string $body): array
	{
		$answer = '';
		$ch = curl_init($url);
		curl_setopt_array($ch, [
			CURLOPT_POST => true,
			CURLOPT_POSTFIELDS => $body,
			CURLOPT_HTTPHEADER => array_merge($lines, ['Expect:']), // no 100-continue round trip
			CURLOPT_TIMEOUT_MS => (int)($this->timeout * 1000),
			CURLOPT_CONNECTTIMEOUT_MS => (int)(min(1.0, $this->timeout) * 1000),
			CURLOPT_NOSIGNAL => true,
			CURLOPT_FOLLOWLOCATION => false,
			CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
			CURLOPT_WRITEFUNCTION => function ($ch, $chunk) use (&$answer) {
				if (strlen($answer) + strlen($chunk) > self::MAX_ANSWER) {
					return 0; // aborts the transfer: an oversized answer is an error
				}
				$answer .= $chunk;
				return strlen($chunk);
			},
		]);
		$ok = curl_exec($ch);
		$status = (int)curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
		$error = $ok === false ? curl_error($ch) : '';
		curl_close($ch);
		return [$ok === false ? 0 : $status, $answer, $error];
	}

	private function postStream(string $url, array $lines, string $body): array
	{
		$deadline = microtime(true) + $this->timeout;
		$context = stream_context_create(['http' => [
			'method' => 'POST',
			'header' => implode("\r\n", $lines),
			'content' => $body,
			// Connecting and reading the headers each wait up to this long: half the
			// budget each keeps the whole request inside the deadline.
			'timeout' => $this->timeout / 2,
			'ignore_errors' => true, // read 4xx/5xx answers instead of failing
			'follow_location' => 0,
			'protocol_version' => 1.1,
		]]);
		$fp = @fopen($url, 'rb', false, $context);
		if ($fp === false) {
			$e = error_get_last();
			return [0, '', $e['message'] ?? 'connection failed'];
		}
		$answer = '';
		while (!feof($fp) && strlen($answer) <= self::MAX_ANSWER && microtime(true) < $deadline) {
			$chunk = fread($fp, 8192);
			if ($chunk === false) {
				break;
			}
			$answer .= $chunk;
		}
		$meta = stream_get_meta_data($fp);
		fclose($fp);
		if (!empty($meta['timed_out']) || microtime(true) >= $deadline && !$meta['eof']) {
			return [0, '', 'timed out'];
		}
		$status = 0;
		foreach ($meta['wrapper_data'] ?? [] as $line) {
			if (preg_match('#^HTTP/\S+\s+(\d{3})#', $line, $m)) {
				$status = (int)$m[1]; // the last status line wins (after a 100 Continue)
			}
		}
		return [$status, substr($answer, 0, self::MAX_ANSWER), ''];
	}
}
