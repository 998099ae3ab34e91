<?php
/*
 * Small stand-ins for the parts of 1C-Bitrix that the orderbridge module touches, so that
 * the module runs under plain php-cli. They mimic the behaviour the module relies on and
 * nothing more: Order::save() fires OnSaleOrderBeforeSaved, OnSaleOrderSaved, then the
 * "special" events (status, paid, canceled), through EventManager, which — like Bitrix's —
 * lets a handler's exception propagate to whoever saved the order.
 */

namespace Bitrix\Main {

	final class Loader
	{
		/** module id => folder; the tests point "orderbridge" at site/bitrix/orderbridge */
		public static $moduleDirs = [];
		private static $classes = [];

		public static function registerAutoLoadClasses($module, array $classes)
		{
			foreach ($classes as $class => $file) {
				self::$classes[strtolower(ltrim($class, '\\'))] = self::$moduleDirs[$module] . '/' . $file;
			}
			static $registered = false;
			if (!$registered) {
				$registered = true;
				spl_autoload_register(function ($class) {
					$file = self::$classes[strtolower(ltrim($class, '\\'))] ?? null;
					if ($file !== null) {
						require_once $file;
					}
				});
			}
		}

		public static function includeModule($module)
		{
			return true;
		}
	}

	class Event
	{
		private $moduleId;
		private $type;
		private $parameters;

		public function __construct($moduleId, $type, array $parameters = [])
		{
			$this->moduleId = $moduleId;
			$this->type = $type;
			$this->parameters = $parameters;
		}

		public function getParameter($key)
		{
			return $this->parameters[$key] ?? null;
		}

		public function getParameters()
		{
			return $this->parameters;
		}

		public function getEventType()
		{
			return $this->type;
		}

		/**
		 * Runs the registered handlers; exceptions are not caught, as in Bitrix. What a handler
		 * returns is kept for getResults() (main/lib/event.php: a result that is not an
		 * EventResult is wrapped as EventResult::UNDEFINED; null is dropped).
		 */
		public function send()
		{
			$this->results = [];
			foreach (EventManager::getInstance()->handlersFor($this->moduleId, $this->type) as $h) {
				$r = call_user_func($h['callback'] ?? [$h['class'], $h['method']], $this);
				if ($r !== null) {
					$this->results[] = $r instanceof EventResult ? $r : new EventResult(EventResult::UNDEFINED, $r);
				}
			}
		}

		/** @return EventResult[] */
		public function getResults()
		{
			return $this->results;
		}

		private $results = [];
	}

	/** main/lib/eventresult.php: a handler's answer; the sale module reads ERROR as a veto. */
	class EventResult
	{
		public const UNDEFINED = 0;
		public const SUCCESS = 1;
		public const ERROR = 2;

		private $type;
		private $parameters;

		public function __construct($type, $parameters = null, $moduleId = null)
		{
			$this->type = $type;
			$this->parameters = $parameters;
		}

		public function getType()
		{
			return $this->type;
		}

		public function getParameters()
		{
			return $this->parameters;
		}
	}

	/** main/lib/error.php */
	class Error
	{
		private $message;
		private $code;

		public function __construct($message, $code = 0)
		{
			$this->message = (string)$message;
			$this->code = $code;
		}

		public function getMessage()
		{
			return $this->message;
		}

		public function getCode()
		{
			return $this->code;
		}
	}

	final class EventManager
	{
		private static $instance;
		/** persistent registrations, as in b_module_to_module */
		public $registered = [];
		/** addEventHandler: this request only (a shop's own init.php handlers, in the tests) */
		public $runtime = [];

		public static function getInstance()
		{
			return self::$instance ?? (self::$instance = new self());
		}

		public function registerEventHandler($fromModule, $event, $toModule, $class = '', $method = '')
		{
			$this->registered[] = ['from' => $fromModule, 'event' => $event, 'to' => $toModule,
				'class' => $class, 'method' => $method];
		}

		public function unRegisterEventHandler($fromModule, $event, $toModule, $class = '', $method = '')
		{
			$this->registered = array_values(array_filter($this->registered,
				function ($r) use ($fromModule, $event, $toModule, $class, $method) {
					return !($r['from'] === $fromModule && $r['event'] === $event && $r['to'] === $toModule
						&& $r['class'] === $class && $r['method'] === $method);
				}));
		}

		public function addEventHandler($fromModule, $event, $callback)
		{
			$this->runtime[] = ['from' => $fromModule, 'event' => $event, 'callback' => $callback];
		}

		public function handlersFor($module, $event)
		{
			return array_values(array_filter(array_merge($this->registered, $this->runtime),
				function ($r) use ($module, $event) {
					return strcasecmp($r['from'], $module) === 0 && strcasecmp($r['event'], $event) === 0;
				}));
		}
	}

	final class ModuleManager
	{
		public static $installed = ['main' => true, 'sale' => true];

		public static function isModuleInstalled($id)
		{
			return !empty(self::$installed[$id]);
		}

		public static function registerModule($id)
		{
			self::$installed[$id] = true;
		}

		public static function unRegisterModule($id)
		{
			unset(self::$installed[$id]);
		}

		/**
		 * main/lib/modulemanager.php: $arModuleVersion['VERSION'] of the module's
		 * install/version.php, local/modules first, then bitrix/modules; false when the
		 * module is not installed or has no such file.
		 */
		public static function getVersion($id)
		{
			if (!self::isModuleInstalled($id)) {
				return false;
			}
			foreach (['/local/modules/', '/bitrix/modules/'] as $dir) {
				$file = ($_SERVER['DOCUMENT_ROOT'] ?? '') . $dir . $id . '/install/version.php';
				if (is_file($file)) {
					$arModuleVersion = [];
					include $file;
					return $arModuleVersion['VERSION'] ?? false;
				}
			}
			return false;
		}
	}

	/**
	 * main/lib/result.php, plus what the tests need of its relatives: the list-of-rows result
	 * of a D7 getList, and the result of an add (getId). isSuccess() turns false with the
	 * first error; getErrorMessages() is the messages of getErrors(), in order.
	 */
	class Result
	{
		private $rows;
		private $id;
		/** @var Error[] */
		private $errors = [];

		/** $errors: messages (strings) or Error objects */
		public function __construct(array $rows = [], $id = null, array $errors = [])
		{
			$this->rows = $rows;
			$this->id = $id;
			foreach ($errors as $e) {
				$this->addError($e instanceof Error ? $e : new Error($e));
			}
		}

		public function fetch()
		{
			return array_shift($this->rows) ?: false;
		}

		public function getId()
		{
			return $this->id;
		}

		public function setId($id)
		{
			$this->id = $id;
		}

		public function addError(Error $error)
		{
			$this->errors[] = $error;
			return $this;
		}

		public function addErrors(array $errors)
		{
			foreach ($errors as $e) {
				$this->addError($e);
			}
			return $this;
		}

		public function getErrors()
		{
			return $this->errors;
		}

		public function isSuccess()
		{
			return !$this->errors;
		}

		public function getErrorMessages()
		{
			return array_map(function (Error $e) {
				return $e->getMessage();
			}, $this->errors);
		}
	}

	/**
	 * main/lib/context.php and main/lib/httprequest.php, the little the settings page uses:
	 * Context::getCurrent()->getRequest(); isPost() is REQUEST_METHOD POST; getPost($name) is
	 * the POST value or null.
	 */
	class Context
	{
		private static $current;

		public static function getCurrent()
		{
			return self::$current ?? (self::$current = new self());
		}

		public function getRequest()
		{
			return new HttpRequest();
		}
	}

	class HttpRequest
	{
		public function isPost()
		{
			return ($_SERVER['REQUEST_METHOD'] ?? 'GET') === 'POST';
		}

		public function getPost($name)
		{
			return $_POST[$name] ?? null;
		}
	}

	/**
	 * main/lib/site.php (SiteTable, table b_lang): the sites of the installation. getList
	 * understands '=FIELD' filters and ['SORT' => 'ASC'] order; rows have LID (the site id,
	 * 2 characters in the admin form), NAME, SERVER_NAME, ACTIVE, SORT, DEF.
	 */
	final class SiteTable
	{
		public static $rows = [];

		public static function getList(array $params = [])
		{
			$rows = array_values(array_filter(self::$rows, function ($row) use ($params) {
				foreach ($params['filter'] ?? [] as $key => $value) {
					if ((string)($row[ltrim($key, '=')] ?? '') !== (string)$value) {
						return false;
					}
				}
				return true;
			}));
			usort($rows, function ($a, $b) {
				return [(int)($a['SORT'] ?? 100), $a['LID']] <=> [(int)($b['SORT'] ?? 100), $b['LID']];
			});
			return new Result($rows);
		}
	}
}

namespace Bitrix\Main\Config {

	final class Option
	{
		public static $values = [];

		public static function get($module, $name, $default = '')
		{
			return self::$values[$module][$name] ?? $default;
		}

		public static function set($module, $name, $value)
		{
			self::$values[$module][$name] = (string)$value;
		}

		/** main/lib/config/option.php: the whole module, or only $filter['name'] when given. */
		public static function delete($module, array $filter = [])
		{
			if (isset($filter['name'])) {
				unset(self::$values[$module][$filter['name']]);
				return;
			}
			unset(self::$values[$module]);
		}
	}

	/**
	 * main/lib/config/configuration.php: getValue($name) is the 'value' of $name in
	 * bitrix/.settings.php (and .settings_extra.php), null when it is not set. The tests
	 * put values into $values; 'http_client_options' is where a site keeps its proxy and
	 * TLS settings for HttpClient.
	 */
	final class Configuration
	{
		public static $values = [];

		public static function getValue($name)
		{
			return self::$values[$name] ?? null;
		}
	}
}

namespace Bitrix\Main\Web {

	use Bitrix\Main\Config\Configuration;

	/**
	 * main/lib/web/httpclient.php as of main 20-22 (the socket client; main 23 keeps the same
	 * public API over PSR-18): a real HTTP/1.0 client over stream_socket_client, so the tests
	 * talk to fake_daemon.php through it. What it keeps of the original:
	 *  - options: the constructor's array, plus Configuration 'http_client_options' for the keys
	 *    it lacks ($options += $defaults: the caller's keys win). 'redirect' reads
	 *    $options['redirectMax'] unguarded (a warning when missing, as in main 20-22);
	 *  - socketTimeout and streamTimeout are whole seconds (intval): socketTimeout bounds the
	 *    connect, streamTimeout each read (stream_set_timeout); a streamTimeout of 0 means no
	 *    read timeout at all. Defaults 30 and 60;
	 *  - POST gets Content-Type application/x-www-form-urlencoded unless one was set, and
	 *    Content-Length; "Connection: close";
	 *  - post() returns the body, or false when the connection or reading the headers failed;
	 *    getError() is [CODE => message] (CONNECTION, SOCKET, STREAM_TIMEOUT, ...);
	 *    getStatus() is 0 until a status line was read. A body that times out or passes
	 *    bodyLengthMax is cut, and post() still returns what was read (getResult ignores
	 *    readBody's failure), with the error in getError();
	 *  - redirects are followed (Location) unless 'redirect' => false; a proxy (proxyHost,
	 *    proxyPort) gets the absolute URI in the request line.
	 */
	class HttpClient
	{
		public const DEFAULT_SOCKET_TIMEOUT = 30;
		public const DEFAULT_STREAM_TIMEOUT = 60;

		protected $socketTimeout = self::DEFAULT_SOCKET_TIMEOUT;
		protected $streamTimeout = self::DEFAULT_STREAM_TIMEOUT;
		protected $redirect = true;
		protected $redirectMax = 5;
		protected $version = '1.0';
		protected $bodyLengthMax = 0;
		protected $sslVerify = true;
		protected $proxyHost = '';
		protected $proxyPort = 80;
		protected $requestHeaders = [];
		protected $resource;
		protected $status = 0;
		protected $responseHeaders = [];
		protected $result = '';
		protected $error = [];
		protected $received = 0;
		/** @var array what the tests can read back: the options in effect */
		public $effectiveOptions = [];

		public function __construct(array $options = null)
		{
			$options = $options ?? [];
			$defaults = Configuration::getValue('http_client_options');
			if ($defaults !== null) {
				$options += $defaults;
			}
			$this->effectiveOptions = $options;
			if (isset($options['redirect'])) {
				$this->setRedirect($options['redirect'], $options['redirectMax']);
			}
			if (isset($options['socketTimeout'])) {
				$this->socketTimeout = intval($options['socketTimeout']);
			}
			if (isset($options['streamTimeout'])) {
				$this->streamTimeout = intval($options['streamTimeout']);
			}
			if (isset($options['version'])) {
				$this->version = $options['version'];
			}
			if (isset($options['proxyHost'])) {
				$this->proxyHost = $options['proxyHost'];
				$this->proxyPort = intval($options['proxyPort'] ?? 80) ?: 80;
			}
			if (isset($options['disableSslVerification']) && $options['disableSslVerification'] === true) {
				$this->sslVerify = false;
			}
			if (isset($options['bodyLengthMax'])) {
				$this->bodyLengthMax = intval($options['bodyLengthMax']);
			}
			if (isset($options['headers'])) {
				foreach ($options['headers'] as $name => $value) {
					$this->setHeader($name, $value);
				}
			}
		}

		public function __destruct()
		{
			$this->disconnect();
		}

		public function setRedirect($value, $max = null)
		{
			$this->redirect = (bool)$value;
			if ($max !== null) {
				$this->redirectMax = intval($max);
			}
			return $this;
		}

		public function setHeader($name, $value, $replace = true)
		{
			$key = strtolower($name);
			if ($replace || !isset($this->requestHeaders[$key])) {
				$this->requestHeaders[$key] = [$name, (string)$value];
			}
			return $this;
		}

		public function post($url, $postData = null, $multipart = false)
		{
			if (is_array($postData)) {
				$postData = http_build_query($postData, '', '&');
			}
			return $this->query('POST', $url, $postData) ? $this->getResult() : false;
		}

		public function query($method, $url, $entityBody = null)
		{
			$this->error = [];
			$redirects = 0;
			while (true) {
				$parts = parse_url($url);
				if (!is_array($parts) || ($parts['host'] ?? '') === '') {
					$this->error['URI'] = "Incorrect URI: {$url}";
					return false;
				}
				$this->disconnect();
				if (!$this->connect($parts)) {
					return false;
				}
				$this->sendRequest($method, $url, $parts, (string)$entityBody);
				if (!$this->readHeaders()) {
					$this->disconnect();
					return false;
				}
				$location = $this->responseHeaders['location'] ?? '';
				if (!$this->redirect || $location === '') {
					return true;
				}
				$this->disconnect();
				if ($redirects++ >= $this->redirectMax) {
					$this->error['REDIRECT'] = "Maximum number of redirects ({$this->redirectMax}) has been reached at URL {$url}";
					trigger_error($this->error['REDIRECT'], E_USER_WARNING);
					return false;
				}
				if ($this->status == 302 || $this->status == 303) {
					$method = 'GET';
				}
				$url = $location;
			}
		}

		protected function connect(array $parts)
		{
			if ($this->proxyHost !== '') {
				$target = 'tcp://' . $this->proxyHost . ':' . $this->proxyPort;
			} else {
				$https = ($parts['scheme'] ?? 'http') === 'https';
				$target = ($https ? 'ssl://' : 'tcp://') . $parts['host'] . ':' . ($parts['port'] ?? ($https ? 443 : 80));
			}
			$context = stream_context_create($this->sslVerify ? [] :
				['ssl' => ['verify_peer' => false, 'verify_peer_name' => false, 'allow_self_signed' => true]]);
			$res = @stream_socket_client($target, $errno, $errstr, $this->socketTimeout, STREAM_CLIENT_CONNECT, $context);
			if (is_resource($res)) {
				$this->resource = $res;
				if ($this->streamTimeout > 0) {
					stream_set_timeout($this->resource, $this->streamTimeout);
				}
				return true;
			}
			if (intval($errno) > 0) {
				$this->error['CONNECTION'] = "[{$errno}] {$errstr}";
			} else {
				$this->error['SOCKET'] = 'Socket connection error.';
			}
			return false;
		}

		protected function disconnect()
		{
			if ($this->resource) {
				fclose($this->resource);
				$this->resource = null;
			}
		}

		protected function sendRequest($method, $url, array $parts, string $body)
		{
			$this->status = 0;
			$this->result = '';
			$this->responseHeaders = [];
			$this->received = 0;
			$path = $this->proxyHost !== '' ? $url
				: ($parts['path'] ?? '/') . (isset($parts['query']) ? '?' . $parts['query'] : '');
			$headers = $this->requestHeaders + [
				'host' => ['Host', $parts['host'] . (isset($parts['port']) ? ':' . $parts['port'] : '')],
				'connection' => ['Connection', 'close'],
				'accept' => ['Accept', '*/*'],
				'accept-language' => ['Accept-Language', 'en'],
			];
			if ($method === 'POST' && !isset($headers['content-type'])) {
				$headers['content-type'] = ['Content-Type', 'application/x-www-form-urlencoded'];
			}
			if ($body !== '' || $method === 'POST' || $method === 'PUT') {
				$headers['content-length'] = ['Content-Length', (string)strlen($body)];
			}
			$request = $method . ' ' . $path . ' HTTP/' . $this->version . "\r\n";
			foreach ($headers as [$name, $value]) {
				$request .= $name . ': ' . $value . "\r\n";
			}
			@fwrite($this->resource, $request . "\r\n" . $body);
		}

		protected function readHeaders()
		{
			$head = '';
			while (!feof($this->resource)) {
				$line = fgets($this->resource, 16384);
				if ($line === "\r\n") {
					break;
				}
				if (!$this->checkErrors($line)) {
					return false;
				}
				$head .= $line;
			}
			foreach (explode("\n", $head) as $k => $line) {
				if ($k === 0 && preg_match('#HTTP\S+ (\d+)#', $line, $m)) {
					$this->status = intval($m[1]);
				} elseif (strpos($line, ':') !== false) {
					[$name, $value] = explode(':', $line, 2);
					$this->responseHeaders[strtolower(trim($name))] = trim($value);
				}
			}
			return true;
		}

		protected function readBody()
		{
			$length = $this->responseHeaders['content-length'] ?? null;
			$left = $length === null ? null : (int)$length;
			while (!feof($this->resource) && ($left === null || $left > 0)) {
				$buf = stream_get_contents($this->resource, $left === null ? 16384 : min(16384, $left));
				if ($buf !== false) {
					$this->result .= $buf;
					$this->received += strlen($buf);
					if ($left !== null) {
						$left -= strlen($buf);
					}
				}
				if (!$this->checkErrors($buf)) {
					return false;
				}
			}
			return true;
		}

		protected function checkErrors($buf)
		{
			if ($this->streamTimeout > 0) {
				$info = stream_get_meta_data($this->resource);
				if ($info['timed_out']) {
					$this->error['STREAM_TIMEOUT'] = "Stream reading timeout of {$this->streamTimeout} second(s) has been reached.";
					return false;
				}
			}
			if ($buf === false) {
				$this->error['STREAM_READING'] = 'Stream reading error.';
				return false;
			}
			if ($this->bodyLengthMax > 0 && $this->received > $this->bodyLengthMax) {
				$this->error['STREAM_LENGTH'] = 'Maximum content length has been reached. Breaking reading.';
				return false;
			}
			return true;
		}

		public function getResult()
		{
			if ($this->resource) {
				$this->readBody();
				$this->disconnect();
			}
			return $this->result;
		}

		public function getStatus()
		{
			return $this->status;
		}

		public function getError()
		{
			return $this->error;
		}
	}
}

namespace Bitrix\Main\Localization {

	/**
	 * main/lib/localization/loc.php: loadMessages($file) walks up from the file's folder to
	 * the first one with a lang/ folder and includes lang/<language>/<the file's path below
	 * that folder>, which fills $MESS; getMessage applies the #KEY# replacements. The tests
	 * run in English. A missing message comes back as its code (Bitrix gives an empty
	 * string), so that a missing text is visible in a test's output.
	 */
	final class Loc
	{
		public const LANGUAGE = 'en';
		private static $messages = [];

		public static function loadMessages($file)
		{
			$dir = dirname($file);
			while ($dir !== dirname($dir) && !is_dir($dir . '/lang')) {
				$dir = dirname($dir);
			}
			$langFile = $dir . '/lang/' . self::LANGUAGE . substr($file, strlen($dir));
			if (is_dir($dir . '/lang') && is_file($langFile)) {
				$MESS = [];
				include $langFile;
				self::$messages = $MESS + self::$messages;
			}
		}

		public static function getMessage($code, $replace = null)
		{
			$message = self::$messages[$code] ?? $code;
			return is_array($replace) ? strtr($message, $replace) : $message;
		}
	}
}

namespace Bitrix\Main\Type {

	/** Bitrix's DateTime: a moment, read here through getTimestamp() only. */
	class DateTime
	{
		private $ts;

		public function __construct($time = null)
		{
			$this->ts = $time === null ? time() : (new \DateTimeImmutable($time))->getTimestamp();
		}

		public function getTimestamp()
		{
			return $this->ts;
		}
	}
}

namespace Bitrix\Sale {

	use Bitrix\Main\Event;
	use Bitrix\Main\EventResult;
	use Bitrix\Main\Type\DateTime;

	/** sale/lib/result.php: the sale module's Result (Main\Result plus warnings, unused here). */
	class Result extends \Bitrix\Main\Result
	{
	}

	/** sale/lib/resulterror.php */
	class ResultError extends \Bitrix\Main\Error
	{
	}

	/**
	 * How the sale module reads a "before" event (sale/lib/internals/entity.php setField,
	 * sale/lib/orderbase.php callEventOnBeforeOrderSaved / onFieldModify): every handler
	 * result of type EventResult::ERROR is a veto; its message is the ResultError the handler
	 * passed as parameters, or the module's generic one.
	 */
	function vetoes(Event $event, string $generic): Result
	{
		$result = new Result();
		foreach ($event->getResults() as $r) {
			if ($r->getType() === EventResult::ERROR) {
				$p = $r->getParameters();
				$result->addError($p instanceof ResultError ? $p : new ResultError($generic, $generic));
			}
		}
		return $result;
	}

	class PropertyValue
	{
		public $fields;
		private $value;

		/** $fields: CODE, ORDER_PROPS_ID and the flags IS_PAYER / IS_PHONE / IS_EMAIL */
		public function __construct(array $fields, $value = '')
		{
			$this->fields = $fields;
			$this->value = $value;
		}

		public function getValue()
		{
			return $this->value;
		}

		/**
		 * sale/lib/entitypropertyvalue.php: setValue() is setField('VALUE', ...) and returns its
		 * Result; sale/lib/internals/entity.php: an OnBeforeSalePropertyValueSetField handler
		 * returning EventResult::ERROR vetoes it and the value stays.
		 */
		public function setValue($value)
		{
			$event = new Event('sale', 'OnBeforeSalePropertyValueSetField',
				['ENTITY' => $this, 'NAME' => 'VALUE', 'VALUE' => $value]);
			$event->send();
			$result = vetoes($event, 'SALE_EVENT_ON_BEFORE_SALEPROPERTYVALUE_SET_FIELD_ERROR');
			if ($result->isSuccess()) {
				$this->value = $value;
			}
			return $result;
		}

		public function getField($name)
		{
			if ($name === 'CODE' && Order::$legacySale && !isset($this->fields['ID'])) {
				return null; // see legacy() below
			}
			return $this->fields[$name] ?? null;
		}

		/**
		 * sale/lib/propertyvaluebase.php getProperty(): the order property's row (CODE, NAME,
		 * TYPE, IS_* flags ...), which always has the CODE.
		 */
		public function getProperty()
		{
			return $this->fields;
		}
	}

	/**
	 * The property collection of sale versions before getItemByOrderPropertyCode(): sale
	 * 17.0.30 (propertyvaluecollection.php), 18.6.850 and 20.0.275 (propertyvaluecollectionbase.php)
	 * have getItemByOrderPropertyId(), the IS_* getters and iteration, and no lookup by code;
	 * the method is there from 20.0.696 (propertyvaluecollectionbase.php; in 22.800 it moved
	 * to entitypropertyvaluecollection.php). The harsher reading
	 * of the old PropertyValue is kept too: a value not yet saved (no ID) may lack CODE among
	 * its fields (it is filled from b_sale_order_props_value.CODE on load), so only
	 * getProperty()['CODE'] is sure to have it. Order::$legacySale switches orders to this.
	 */
	class LegacyPropertyValueCollection implements \IteratorAggregate
	{
		protected $items;

		public function __construct(array $items)
		{
			$this->items = $items;
		}

		/** A loaded order is a copy: its property values are its own. */
		public function __clone()
		{
			foreach ($this->items as $k => $item) {
				$this->items[$k] = clone $item;
			}
		}

		public function getIterator(): \Iterator
		{
			return new \ArrayIterator($this->items);
		}

		public function getItemByOrderPropertyId($id)
		{
			foreach ($this->items as $item) {
				if ((string)$item->getField('ORDER_PROPS_ID') === (string)$id) {
					return $item;
				}
			}
			return null;
		}

		private function byFlag($flag)
		{
			foreach ($this->items as $item) {
				if ($item->getField($flag) === 'Y') {
					return $item;
				}
			}
			return null;
		}

		public function getPayerName()
		{
			return $this->byFlag('IS_PAYER');
		}

		public function getPhone()
		{
			return $this->byFlag('IS_PHONE');
		}

		public function getUserEmail()
		{
			return $this->byFlag('IS_EMAIL');
		}
	}

	/** sale 20.0.696+ (propertyvaluecollectionbase.php, later entitypropertyvaluecollection.php): lookup by CODE. */
	class PropertyValueCollection extends LegacyPropertyValueCollection
	{
		public function getItemByOrderPropertyCode($code)
		{
			foreach ($this->items as $item) {
				if ($item->getField('CODE') === $code) {
					return $item;
				}
			}
			return null;
		}
	}

	class BasketItem
	{
		private $fields;

		/** PRODUCT_ID, NAME, PRICE (float, as Bitrix returns it), QUANTITY, SET_PARENT_ID */
		public function __construct(array $fields)
		{
			$this->fields = $fields;
		}

		public function getProductId()
		{
			return $this->fields['PRODUCT_ID'];
		}

		public function getField($name)
		{
			return $this->fields[$name] ?? null;
		}

		public function getPrice()
		{
			return $this->fields['PRICE'];
		}

		/**
		 * sale/lib/basketitembase.php getBasePrice(): BASE_PRICE, the price before discounts;
		 * getPrice() is after them. Bitrix fills BASE_PRICE on every row (equal to PRICE when
		 * nothing is discounted), so the stand-in does the same.
		 */
		public function getBasePrice()
		{
			return $this->fields['BASE_PRICE'] ?? $this->fields['PRICE'];
		}

		public function getQuantity()
		{
			return $this->fields['QUANTITY'];
		}

		public function isBundleChild()
		{
			return !empty($this->fields['SET_PARENT_ID']);
		}
	}

	class Basket implements \IteratorAggregate
	{
		private $items;

		public function __construct(array $items)
		{
			$this->items = $items;
		}

		public function getIterator(): \Iterator
		{
			return new \ArrayIterator($this->items);
		}
	}

	/**
	 * sale/lib/shipment.php: isSystem() (SYSTEM = Y: the order's system shipment, which holds
	 * what is not shipped yet and has no delivery service), getDeliveryName() (DELIVERY_NAME),
	 * getPrice() (PRICE_DELIVERY, after discounts); BASE_PRICE_DELIVERY is the price before them.
	 */
	class Shipment
	{
		private $fields;

		public function __construct(array $fields)
		{
			$this->fields = $fields + ['SYSTEM' => 'N', 'PRICE_DELIVERY' => 0.0];
		}

		public function isSystem()
		{
			return $this->fields['SYSTEM'] === 'Y';
		}

		public function getDeliveryName()
		{
			return $this->fields['DELIVERY_NAME'] ?? '';
		}

		public function getPrice()
		{
			return $this->fields['PRICE_DELIVERY'];
		}

		public function getField($name)
		{
			return $this->fields[$name] ?? null;
		}
	}

	/** sale/lib/shipmentcollection.php: every order has its system shipment among them. */
	class ShipmentCollection implements \IteratorAggregate
	{
		private $items;

		public function __construct(array $items)
		{
			$this->items = $items;
		}

		public function getIterator(): \Iterator
		{
			return new \ArrayIterator($this->items);
		}

		public function getNotSystemItems()
		{
			return array_values(array_filter($this->items, function ($s) {
				return !$s->isSystem();
			}));
		}
	}

	/**
	 * sale/lib/payment.php: getPaymentSystemName() (PAY_SYSTEM_NAME), getPaymentSystemId()
	 * (PAY_SYSTEM_ID), getSum() (SUM), isPaid() (PAID = Y).
	 */
	class Payment
	{
		private $fields;

		public function __construct(array $fields)
		{
			$this->fields = $fields + ['PAID' => 'N', 'SUM' => 0.0];
		}

		public function getPaymentSystemName()
		{
			return $this->fields['PAY_SYSTEM_NAME'] ?? '';
		}

		public function getPaymentSystemId()
		{
			return $this->fields['PAY_SYSTEM_ID'] ?? 0;
		}

		public function getSum()
		{
			return $this->fields['SUM'];
		}

		public function isPaid()
		{
			return $this->fields['PAID'] === 'Y';
		}
	}

	class PaymentCollection implements \IteratorAggregate
	{
		private $items;

		public function __construct(array $items)
		{
			$this->items = $items;
		}

		public function getIterator(): \Iterator
		{
			return new \ArrayIterator($this->items);
		}
	}

	/**
	 * sale/lib/discountbase.php getApplyResult(): COUPON_LIST is the order's coupons keyed by
	 * coupon code, each with COUPON (the code) and APPLY ('Y' when it took part in a discount,
	 * 'N' when entered but not applied), among other fields.
	 */
	class Discount
	{
		private $coupons;

		/** @param array $coupons code => 'Y'|'N' (applied or not) */
		public function __construct(array $coupons)
		{
			$this->coupons = $coupons;
		}

		public function getApplyResult($extMode = false)
		{
			$list = [];
			foreach ($this->coupons as $code => $apply) {
				$list[$code] = ['COUPON' => (string)$code, 'TYPE' => 2, 'APPLY' => $apply, 'DATA' => []];
			}
			return ['DISCOUNT_LIST' => [], 'COUPON_LIST' => $list, 'PRICES' => []];
		}
	}

	/**
	 * What the module uses of \Bitrix\Sale\Order (sale/lib/order.php, orderbase.php,
	 * internals/entity.php). load() hands out a copy of the stored order, as a load from the
	 * database would, so what a caller changes and does not save is not seen by the next load.
	 */
	class Order
	{
		/** id => the stored state of the order; what load() copies */
		public static $saved = [];
		/** true: orders get the property collection of sale before 20.0.696 (LegacyPropertyValueCollection) */
		public static $legacySale = false;
		private static $nextId = 100;

		private $fields;
		/** the values passed to the constructor; getPropertyCollection() adds the shop's others */
		private $givenProps;
		private $props = null;
		private $basket;
		private $changed = [];
		private $shipments;
		private $payments;
		private $coupons;

		/**
		 * $extra: 'shipments' => Shipment[] (the system shipment is added, as every order has
		 * one), 'payments' => Payment[], 'coupons' => [code => 'Y'|'N'].
		 */
		public function __construct(array $fields, array $props, array $basketItems, array $extra = [])
		{
			$this->fields = $fields + ['ID' => 0, 'LID' => 's1', 'STATUS_ID' => 'N', 'CANCELED' => 'N', 'PAYED' => 'N',
				'DEDUCTED' => 'N', 'SUM_PAID' => 0.0, 'CURRENCY' => 'RUB', 'PERSON_TYPE_ID' => 1,
				'PRICE_DELIVERY' => 0.0, 'USER_DESCRIPTION' => ''];
			$this->givenProps = $props;
			$this->basket = new Basket($basketItems);
			$this->shipments = new ShipmentCollection(array_merge($extra['shipments'] ?? [],
				[new Shipment(['SYSTEM' => 'Y', 'DELIVERY_NAME' => ''])]));
			$this->payments = new PaymentCollection($extra['payments'] ?? []);
			$this->coupons = $extra['coupons'] ?? [];
		}

		/** orderbase.php getSiteId(): LID */
		public function getSiteId()
		{
			return $this->fields['LID'];
		}

		/** orderbase.php getDeliveryPrice(): PRICE_DELIVERY, after discounts */
		public function getDeliveryPrice()
		{
			return $this->fields['PRICE_DELIVERY'];
		}

		/** orderbase.php getSumPaid(): SUM_PAID */
		public function getSumPaid()
		{
			return $this->fields['SUM_PAID'];
		}

		public function getDiscount()
		{
			return new Discount($this->coupons);
		}

		public function getShipmentCollection()
		{
			return $this->shipments;
		}

		public function getPaymentCollection()
		{
			return $this->payments;
		}

		public function __clone()
		{
			if ($this->props !== null) {
				$this->props = clone $this->props;
			}
			foreach ($this->givenProps as $k => $p) {
				$this->givenProps[$k] = clone $p;
			}
		}

		public static function load($id)
		{
			return isset(self::$saved[$id]) ? clone self::$saved[$id] : null;
		}

		public function getId()
		{
			return (int)$this->fields['ID'];
		}

		public function isNew()
		{
			return $this->getId() === 0;
		}

		public function getField($name)
		{
			return $this->fields[$name] ?? null;
		}

		/**
		 * sale/lib/internals/entity.php setField(): OnBeforeSaleOrderSetField handlers may veto
		 * (EventResult::ERROR); then, for a new value, onFieldModify() may refuse it, and the
		 * field keeps its old value. Either way the Result carries the errors and nothing throws.
		 */
		public function setField($name, $value)
		{
			$event = new Event('sale', 'OnBeforeSaleOrderSetField',
				['ENTITY' => $this, 'NAME' => $name, 'VALUE' => $value]);
			$event->send();
			$result = vetoes($event, 'SALE_EVENT_ON_BEFORE_SALEORDER_SET_FIELD_ERROR');
			if (!$result->isSuccess()) {
				return $result;
			}
			$old = $this->fields[$name] ?? null;
			if ($old === $value) {
				return $result;
			}
			$result = $this->onFieldModify($name, $old, $value);
			if ($result->isSuccess()) {
				if (!array_key_exists($name, $this->changed)) {
					$this->changed[$name] = $old;
				}
				$this->fields[$name] = $value;
			}
			return $result;
		}

		/**
		 * The refusals of sale/lib/orderbase.php onFieldModify() and order.php onOrderModify():
		 *  - CANCELED (either way): an OnSaleBeforeOrderCanceled handler's veto. Un-cancelling
		 *    has no other rule there; the shop's handlers are what refuse it.
		 *  - CANCELED = Y: a paid payment (paymentcollection.php, SALE_ORDER_CANCEL_PAYMENT_EXIST_ACTIVE)
		 *    or a shipped shipment (shipmentcollection.php, SALE_ORDER_CANCEL_SHIPMENT_EXIST_SHIPPED),
		 *    with the English texts of sale/lang/en/lib/paymentcollection.php and
		 *    shipmentcollection.php. The stand-in has no payments or shipments: an order with
		 *    SUM_PAID > 0 or PAYED = Y has a paid payment, one with DEDUCTED = Y a shipped one.
		 *  - STATUS_ID: an OnSaleBeforeStatusOrderChange handler's veto.
		 */
		protected function onFieldModify($name, $old, $value)
		{
			$result = new Result();
			if ($name === 'CANCELED') {
				$event = new Event('sale', 'OnSaleBeforeOrderCanceled', ['ENTITY' => $this]);
				$event->send();
				$result = vetoes($event, 'SALE_EVENT_ON_BEFORE_ORDER_CANCELED_ERROR');
				if ($result->isSuccess() && $value === 'Y') {
					if ($this->fields['PAYED'] === 'Y' || $this->fields['SUM_PAID'] > 0) {
						$result->addError(new ResultError('The order has active payments',
							'SALE_ORDER_CANCEL_PAYMENT_EXIST_ACTIVE'));
					} elseif ($this->fields['DEDUCTED'] === 'Y') {
						$result->addError(new ResultError('The order has shipped products',
							'SALE_ORDER_CANCEL_SHIPMENT_EXIST_SHIPPED'));
					}
				}
			} elseif ($name === 'STATUS_ID') {
				$event = new Event('sale', 'OnSaleBeforeStatusOrderChange',
					['ENTITY' => $this, 'VALUE' => $value, 'OLD_VALUE' => $old]);
				$event->send();
				$result = vetoes($event, 'SALE_EVENT_ON_BEFORE_ORDER_STATUS_CHANGE_ERROR');
			}
			return $result;
		}

		public function getPersonTypeId()
		{
			return $this->fields['PERSON_TYPE_ID'];
		}

		public function getPrice()
		{
			return $this->fields['PRICE'];
		}

		public function getCurrency()
		{
			return $this->fields['CURRENCY'];
		}

		public function isPaid()
		{
			return $this->fields['PAYED'] === 'Y';
		}

		public function isCanceled()
		{
			return $this->fields['CANCELED'] === 'Y';
		}

		/**
		 * sale/lib/entitypropertyvalue.php loadFromDb(): an order's collection holds a value for
		 * every active property of its person type (b_sale_order_props), empty (or the default
		 * value) where the order has none yet. Here: the values given to the constructor, then
		 * one for each property row of OrderPropsTable whose CODE they lack.
		 */
		public function getPropertyCollection()
		{
			if ($this->props === null) {
				$items = $this->givenProps;
				$codes = array_map(function ($p) {
					return $p->getField('CODE');
				}, $items);
				$rows = \Bitrix\Sale\Internals\OrderPropsTable::getList(
					['filter' => ['=PERSON_TYPE_ID' => $this->getPersonTypeId()]]);
				while ($row = $rows->fetch()) {
					if (($row['ACTIVE'] ?? 'Y') === 'N' || in_array($row['CODE'] ?? null, $codes, true)) {
						continue;
					}
					$items[] = new PropertyValue(['CODE' => $row['CODE'] ?? null, 'ORDER_PROPS_ID' => $row['ID']]
						+ array_diff_key($row, ['ID' => true]), (string)($row['DEFAULT_VALUE'] ?? ''));
				}
				$this->props = self::$legacySale ? new LegacyPropertyValueCollection($items)
					: new PropertyValueCollection($items);
			}
			return $this->props;
		}

		public function getBasket()
		{
			return $this->basket;
		}

		/**
		 * The order of events of sale/lib/orderbase.php save(): OnSaleOrderBeforeSaved, whose
		 * EventResult::ERROR vetoes the save (the Result has the errors, nothing is stored, the
		 * changes stay in the object); then the order is stored, OnSaleOrderSaved fires (on every
		 * save, even one that changed only a property), then the "special" events.
		 */
		public function save()
		{
			$isNew = $this->isNew();
			$event = new Event('sale', 'OnSaleOrderBeforeSaved', ['ENTITY' => $this, 'VALUES' => $this->changed]);
			$event->send();
			$result = vetoes($event, 'SALE_EVENT_ON_BEFORE_ORDER_SAVED_ERROR');
			if (!$result->isSuccess()) {
				return $result;
			}
			if ($isNew) {
				$this->fields['ID'] = self::$nextId++;
				$this->fields['DATE_INSERT'] = $this->fields['DATE_INSERT'] ?? new DateTime();
			}
			$this->fields['DATE_UPDATE'] = new DateTime();
			self::$saved[$this->getId()] = clone $this;
			$changed = $this->changed;
			$this->changed = [];
			(new Event('sale', 'OnSaleOrderSaved', ['ENTITY' => $this, 'IS_NEW' => $isNew, 'VALUES' => $changed]))->send();
			if (array_key_exists('STATUS_ID', $changed)) {
				(new Event('sale', 'OnSaleStatusOrderChange', ['ENTITY' => $this,
					'VALUE' => $this->fields['STATUS_ID'], 'OLD_VALUE' => $changed['STATUS_ID']]))->send();
			}
			if (array_key_exists('PAYED', $changed)) {
				(new Event('sale', 'OnSaleOrderPaid', ['ENTITY' => $this]))->send();
			}
			if (array_key_exists('CANCELED', $changed)) {
				(new Event('sale', 'OnSaleOrderCanceled', ['ENTITY' => $this]))->send();
			}
			$result->setId($this->getId());
			return $result;
		}
	}

	final class OrderStatus
	{
		public static function getAllStatusesNames()
		{
			return ['N' => 'Accepted', 'P' => 'Paid', 'F' => 'Completed'];
		}
	}
}

namespace Bitrix\Catalog {

	/**
	 * catalog/lib/product.php: b_catalog_product, one row per product, keyed by the
	 * product's ID, with PURCHASING_PRICE (float, NULL when not set) and
	 * PURCHASING_CURRENCY. getList understands the '@ID' (in list) filter that the
	 * module uses, and refuses any other, so a new query cannot pass unnoticed.
	 */
	final class ProductTable
	{
		/** @var array<int, array> ID => row */
		public static $rows = [];

		public static function getList(array $params)
		{
			$filter = $params['filter'] ?? [];
			if (array_keys($filter) !== ['@ID'] || !is_array($filter['@ID'])) {
				throw new \LogicException('ProductTable stand-in: only an @ID filter is implemented');
			}
			$rows = [];
			foreach ($filter['@ID'] as $id) {
				if (isset(self::$rows[(int)$id])) {
					$rows[] = ['ID' => (int)$id] + self::$rows[(int)$id];
				}
			}
			return new \Bitrix\Main\Result($rows);
		}
	}
}

namespace Bitrix\Sale\Internals {

	use Bitrix\Main\Result;

	/** Tables as arrays of rows; getList understands '=FIELD' filters only. */
	abstract class FakeTable
	{
		public static $rows = [];

		public static function getList(array $params = [])
		{
			$rows = array_values(array_filter(static::$rows[static::class] ?? [], function ($row) use ($params) {
				foreach ($params['filter'] ?? [] as $key => $value) {
					if ((string)($row[ltrim($key, '=')] ?? '') !== (string)$value) {
						return false;
					}
				}
				return true;
			}));
			return new Result($rows);
		}

		public static function add(array $fields)
		{
			$ids = array_column(static::$rows[static::class] ?? [], 'ID');
			$fields['ID'] = ($ids ? max($ids) : 0) + 1;
			static::$rows[static::class][] = $fields;
			return new Result([], $fields['ID']);
		}

		public static function delete($id)
		{
			static::$rows[static::class] = array_values(array_filter(static::$rows[static::class] ?? [],
				function ($row) use ($id) {
					return (int)$row['ID'] !== (int)$id;
				}));
			return new Result();
		}
	}

	final class PersonTypeTable extends FakeTable
	{
	}

	/**
	 * sale/lib/internals/orderprops.php getMap(): PERSON_TYPE_ID, NAME, TYPE and PROPS_GROUP_ID
	 * are required, ENTITY_TYPE defaults to ORDER; NAME is 1-255 characters, TYPE 1-20, CODE at
	 * most 50. The ORM's add() refuses a row that breaks them with a Result of errors and adds
	 * nothing (the wording of the errors here is the stand-in's own).
	 */
	final class OrderPropsTable extends FakeTable
	{
		public static function add(array $fields)
		{
			$fields += ['ENTITY_TYPE' => 'ORDER'];
			$errors = [];
			foreach (['PERSON_TYPE_ID', 'NAME', 'TYPE', 'PROPS_GROUP_ID', 'ENTITY_TYPE'] as $required) {
				if (!isset($fields[$required]) || $fields[$required] === '' || $fields[$required] === 0) {
					$errors[] = 'required field ' . $required . ' is empty';
				}
			}
			foreach (['NAME' => 255, 'TYPE' => 20, 'CODE' => 50] as $field => $max) {
				if (isset($fields[$field]) && strlen((string)$fields[$field]) > $max) {
					$errors[] = $field . ' is longer than ' . $max;
				}
			}
			if ($errors) {
				return new Result([], null, $errors);
			}
			return parent::add($fields);
		}
	}

	final class OrderPropsGroupTable extends FakeTable
	{
	}
}

namespace {

	class CModule
	{
	}

	/** main/tools.php LocalRedirect(): sends Location and ends the request; here it throws instead. */
	final class LocalRedirected extends \RuntimeException
	{
	}

	function LocalRedirect($url)
	{
		throw new LocalRedirected((string)$url);
	}

	/**
	 * main/interface/admin_tabcontrol.php, as far as a settings page uses it: Begin() opens
	 * the form's table, BeginNextTab() starts the next tab's rows, Buttons() the buttons row.
	 */
	class CAdminTabControl
	{
		private $tabs;
		private $current = -1;

		public function __construct($name, $tabs)
		{
			$this->tabs = $tabs;
		}

		public function Begin()
		{
			echo '<div class="adm-detail-block">';
		}

		public function BeginNextTab()
		{
			echo $this->current >= 0 ? '</table>' : '';
			$tab = $this->tabs[++$this->current];
			echo '<h2 id="tab-' . htmlspecialchars($tab['DIV']) . '">' . htmlspecialchars((string)$tab['TAB']) . '</h2><table>';
		}

		public function Buttons()
		{
			echo '</table><div class="adm-detail-content-btns">';
		}

		public function End()
		{
			echo '</div></div>';
		}
	}

	final class CAgent
	{
		public static $agents = [];

		public static function AddAgent($name, $module = '', $period = 'N', $interval = 86400)
		{
			self::$agents[] = ['name' => $name, 'module' => $module, 'interval' => $interval];
			return count(self::$agents);
		}

		public static function RemoveModuleAgents($module)
		{
			self::$agents = array_values(array_filter(self::$agents, function ($a) use ($module) {
				return $a['module'] !== $module;
			}));
		}
	}

	/** The old API writes to the same table as the D7 one. */
	final class CSaleOrderProps
	{
		public static function Add(array $fields)
		{
			return \Bitrix\Sale\Internals\OrderPropsTable::add($fields)->getId();
		}

		/**
		 * sale/general/order_props.php Delete(): removes the property (and its variants and
		 * relations); the orders' values stay, detached (ORDER_PROPS_ID = NULL). The stand-in
		 * keeps no value rows, so only the property row goes.
		 */
		public static function Delete($id)
		{
			if (!$id) {
				return false;
			}
			\Bitrix\Sale\Internals\OrderPropsTable::delete((int)$id);
			return true;
		}
	}

	/**
	 * main/interface/admin_tabcontrol_drag.php: sale/admin/order_view.php builds
	 * new CAdminDraggableBlockEngine('OnAdminSaleOrderViewDraggable', ['ORDER' => $order]);
	 * the constructor calls every "main" handler of that event with ($args) and keeps each
	 * array it returns under its BLOCKSET; getBlocksBrief() merges what every engine's
	 * getBlocksBrief($args) returns; getBlockContent($code, $tab) concatenates what every
	 * engine's getBlockContent($code, $tab, $args) returns, for every custom block code, so an
	 * engine must return '' for codes that are not its own. The page echoes the brief's TITLE
	 * and the content as they are (DraggableBlockBegin), without escaping.
	 */
	class CAdminDraggableBlockEngine
	{
		private $engines = [];
		private $args;

		public function __construct($id, $args = [])
		{
			$this->args = $args;
			foreach (\Bitrix\Main\EventManager::getInstance()->handlersFor('main', $id) as $h) {
				$res = call_user_func($h['callback'] ?? [$h['class'], $h['method']], $args);
				if (is_array($res)) {
					$this->engines[$res['BLOCKSET']] = $res;
				}
			}
		}

		public function getBlocksBrief()
		{
			$blocks = [];
			foreach ($this->engines as $engine) {
				if (array_key_exists('getBlocksBrief', $engine)) {
					$tmp = call_user_func_array($engine['getBlocksBrief'], [$this->args]);
					if (is_array($tmp)) {
						$blocks = $blocks + $tmp;
					}
				}
			}
			return $blocks;
		}

		public function getBlockContent($blockCode, $selectedTab)
		{
			$result = '';
			foreach ($this->engines as $engine) {
				if (array_key_exists('getBlockContent', $engine)) {
					$result .= call_user_func_array($engine['getBlockContent'], [$blockCode, $selectedTab, $this->args]);
				}
			}
			return $result;
		}
	}
}
