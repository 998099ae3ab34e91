<?php
/*
 * The module's settings, read once from Bitrix options (b_option, module "orderbridge.connector").
 * Everything else takes a Config instead of calling Option::get itself, so that the
 * tests can build one from an array. The signing secret never leaves this object
 * except to Signature.
 */

namespace Orderbridge;

use Bitrix\Main\Config\Option;

final class Config
{
	public const MODULE_ID = 'orderbridge.connector';
	/** The order property that holds the Roistat visit (created by the installer). */
	public const VISIT_PROPERTY = 'ROISTAT_VISIT';
	/** The order property that holds the order's Bitrix24 deal id (created by the installer). */
	public const DEAL_PROPERTY = 'B24_DEAL_ID';
	/** The option that keeps the Bitrix24 portal (scheme://host) last seen in a deal URL. */
	public const PORTAL_OPTION = 'b24_portal_url';
	/** The ingest contract asks for a short timeout; more than 2 s would slow the checkout. */
	public const MAX_TIMEOUT = 2.0;

	/** Base URL of orderbridge, e.g. https://orderbridge.example.ru (POST goes to /v1/orders). */
	public $url = '';
	/** whsec_<base64>; shared with orderbridge's signing_secret_file. */
	public $secret = '';
	/** The "site" field of every snapshot (orderbridge's [site] id). */
	public $siteId = '';
	/** Seconds, at most MAX_TIMEOUT. */
	public $timeout = self::MAX_TIMEOUT;
	public $spoolDir = '';
	/**
	 * Per person type id: ['legal' => bool, 'name' => CODE, 'phone' => CODE, 'email' => CODE,
	 * 'company' => CODE, 'inn' => CODE]. A missing code falls back to the property flags
	 * (IS_PAYER / IS_PHONE / IS_EMAIL) or, for legal entities, to COMPANY / INN.
	 */
	public $personTypes = [];
	/** scheme://host of the Bitrix24 portal, as the status endpoint last learnt it; '' before. */
	public $portalUrl = '';
	/** false: this site's orders are not sent (a storefront excluded in the per-site settings). */
	public $enabled = true;
	/** The Bitrix site (LID) these settings were chosen for by forSite(); '' for the global ones. */
	public $lid = '';
	/**
	 * Per-site settings, option "sites": LID => ['url', 'signing_secret', 'site_id', 'enabled'].
	 * An empty or missing value falls back to the global one; a LID absent here uses the
	 * global settings as they are.
	 */
	public $sites = [];
	/** Order property codes whose values each snapshot carries in "properties" (option "send_properties"). */
	public $sendProperties = [];

	/** At most this many property codes are sent; a code is [A-Za-z0-9_-], at most 50 long. */
	public const MAX_SEND_PROPERTIES = 100;
	/** A Bitrix site id (LID): b_lang.LID is char(2), sites made by hand may be longer. */
	public const LID_PATTERN = '/^[A-Za-z0-9_-]{1,16}$/D';

	public static function fromArray(array $values): self
	{
		$c = new self();
		$c->url = rtrim(trim((string)($values['url'] ?? '')), '/');
		$c->secret = trim((string)($values['signing_secret'] ?? ''));
		$c->siteId = trim((string)($values['site_id'] ?? ''));
		$timeout = (float)($values['timeout'] ?? self::MAX_TIMEOUT);
		$c->timeout = ($timeout > 0 && $timeout <= self::MAX_TIMEOUT) ? $timeout : self::MAX_TIMEOUT;
		$c->spoolDir = rtrim((string)($values['spool_dir'] ?? ''), '/');
		if ($c->spoolDir === '') {
			$c->spoolDir = self::defaultSpoolDir();
		}
		$types = $values['person_types'] ?? [];
		if (is_string($types)) {
			$types = json_decode($types, true);
		}
		$c->personTypes = is_array($types) ? $types : [];
		$c->portalUrl = (string)($values[self::PORTAL_OPTION] ?? '');
		$c->sites = self::parseSites($values['sites'] ?? []);
		$c->sendProperties = self::parseCodes((string)($values['send_properties'] ?? ''));
		return $c;
	}

	/** The settings in effect for $order: those of its site (LID), see forSite(). */
	public function forOrder($order): self
	{
		return $this->forSite(method_exists($order, 'getSiteId') ? (string)$order->getSiteId() : '');
	}

	/**
	 * The settings in effect for the orders of site $lid: its own URL, secret, site id and
	 * enabled flag where the per-site settings have them, the global ones elsewhere.
	 */
	public function forSite(string $lid): self
	{
		$c = clone $this;
		$c->lid = $lid;
		$own = $this->sites[$lid] ?? null;
		if ($own === null) {
			return $c;
		}
		if (($own['url'] ?? '') !== '') {
			$c->url = $own['url'];
		}
		if (($own['signing_secret'] ?? '') !== '') {
			$c->secret = $own['signing_secret'];
		}
		if (($own['site_id'] ?? '') !== '') {
			$c->siteId = $own['site_id'];
		}
		$c->enabled = !array_key_exists('enabled', $own) || !empty($own['enabled']);
		return $c;
	}

	/** The "sites" option (JSON or array) as LID => trimmed strings and a bool; bad entries dropped. */
	public static function parseSites($sites): array
	{
		if (is_string($sites)) {
			$sites = json_decode($sites, true);
		}
		$out = [];
		foreach (is_array($sites) ? $sites : [] as $lid => $entry) {
			if (!is_array($entry) || !preg_match(self::LID_PATTERN, (string)$lid)) {
				continue;
			}
			$clean = [];
			foreach (['url', 'signing_secret', 'site_id'] as $key) {
				$clean[$key] = trim((string)($entry[$key] ?? ''));
			}
			$clean['url'] = rtrim($clean['url'], '/');
			if (array_key_exists('enabled', $entry)) {
				$clean['enabled'] = (bool)$entry['enabled'];
			}
			$out[(string)$lid] = $clean;
		}
		return $out;
	}

	/** "CODE1, CODE2" as a list of valid codes, each once, at most MAX_SEND_PROPERTIES. */
	public static function parseCodes(string $codes): array
	{
		$out = [];
		foreach (preg_split('/[\s,;]+/', $codes, -1, PREG_SPLIT_NO_EMPTY) as $code) {
			if (preg_match('/^[A-Za-z0-9_-]{1,50}$/D', $code) && !in_array($code, $out, true)) {
				$out[] = $code;
			}
		}
		return array_slice($out, 0, self::MAX_SEND_PROPERTIES);
	}

	public static function load(): self
	{
		$values = [];
		foreach (['url', 'signing_secret', 'site_id', 'timeout', 'spool_dir', 'person_types', self::PORTAL_OPTION,
			'sites', 'send_properties'] as $key) {
			$values[$key] = Option::get(self::MODULE_ID, $key, '');
		}
		if ($values['site_id'] === '') {
			$values['site_id'] = Option::get('main', 'server_name', '');
		}
		return self::fromArray($values);
	}

	/**
	 * php_interface is never served by Bitrix's web server configs, and the spool holds
	 * buyers' names and phones; the settings page lets an admin move it out of the web root.
	 */
	public static function defaultSpoolDir(): string
	{
		$root = rtrim((string)($_SERVER['DOCUMENT_ROOT'] ?? ''), '/');
		return $root . '/bitrix/php_interface/orderbridge/spool';
	}

	/** Remembers the portal (Deal::portalOf() of a deal URL) for the admin's order page. */
	public function savePortalUrl(string $portal): void
	{
		if ($portal !== $this->portalUrl) {
			Option::set(self::MODULE_ID, self::PORTAL_OPTION, $portal);
			$this->portalUrl = $portal;
		}
	}

	public function isComplete(): bool
	{
		return $this->url !== '' && $this->secret !== '' && $this->siteId !== '';
	}

	/** The buyer mapping of one person type, defaults filled in. */
	public function personType($personTypeId): array
	{
		$t = $this->personTypes[(string)$personTypeId] ?? [];
		$legal = !empty($t['legal']);
		return [
			'legal' => $legal,
			'name' => (string)($t['name'] ?? ''),
			'phone' => (string)($t['phone'] ?? ''),
			'email' => (string)($t['email'] ?? ''),
			'company' => (string)($t['company'] ?? ($legal ? 'COMPANY' : '')),
			'inn' => (string)($t['inn'] ?? ($legal ? 'INN' : '')),
		];
	}
}
