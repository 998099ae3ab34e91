<?php
/*
 * One HTTP POST through Bitrix's own client, \Bitrix\Main\Web\HttpClient, so that the
 * site's proxy and TLS settings apply (bitrix/.settings.php "http_client_options", which
 * HttpClient merges under the options given here). Never throws: a network failure is
 * status 0 with an error text.
 * The deadline: it runs inside the buyer's checkout, so it must stay within the timeout
 * (≤ 2 s). HttpClient takes whole seconds (intval) and reads 0 as "no read timeout", so
 * the connect gets 1 s and each read max(1, timeout − 1) s: a server that accepts and then
 * stalls costs about 1 s, one that is slow to connect and then stalls about 2 s. Redirects
 * are not followed; the answer is capped (bodyLengthMax), since only short JSON is expected.
 */

namespace Orderbridge;

use Bitrix\Main\Web\HttpClient;

class Transport
{
	public const MAX_ANSWER = 65536;
	/** Seconds for the connect: HttpClient's smallest timeout that is not "none". */
	private const CONNECT_TIMEOUT = 1;

	/** @var float */
	private $timeout;

	public function __construct(float $timeout = Config::MAX_TIMEOUT)
	{
		$this->timeout = min($timeout, Config::MAX_TIMEOUT);
	}

	/**
	 * The options given to HttpClient (see main/lib/web/httpclient.php __construct):
	 * they override the site's http_client_options for these keys only.
	 */
	public function options(): array
	{
		return [
			'socketTimeout' => self::CONNECT_TIMEOUT,
			'streamTimeout' => max(1, (int)floor($this->timeout) - self::CONNECT_TIMEOUT),
			'waitResponse' => true,
			'redirect' => false,
			'redirectMax' => 0, // main before 23 reads it whenever 'redirect' is given
			'bodyLengthMax' => self::MAX_ANSWER,
		];
	}

	/**
	 * @param array $headers name => value
	 * @return array{0:int,1:string,2:string} [HTTP status or 0, answer body, error text]
	 */
	public function post(string $url, array $headers, string $body): array
	{
		try {
			$client = new HttpClient($this->options());
			$client->setHeader('Content-Type', 'application/json');
			foreach ($headers as $name => $value) {
				$client->setHeader($name, $value);
			}
			$answer = $client->post($url, $body);
			$status = (int)$client->getStatus();
			if ($answer === false || $status === 0) {
				return [0, '', self::errorText($client->getError())];
			}
			return [$status, substr((string)$answer, 0, self::MAX_ANSWER), ''];
		} catch (\Throwable $e) {
			return [0, '', $e->getMessage()];
		}
	}

	/** HttpClient's [CODE => message] as one line. */
	private static function errorText($errors): string
	{
		$parts = [];
		foreach (is_array($errors) ? $errors : [] as $code => $message) {
			$parts[] = $code . ': ' . $message;
		}
		return $parts ? implode('; ', $parts) : 'no answer';
	}
}
