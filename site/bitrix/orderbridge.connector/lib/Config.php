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
		return $c;
	}

	public static function load(): self
	{
		$values = [];
		foreach (['url', 'signing_secret', 'site_id', 'timeout', 'spool_dir', 'person_types', self::PORTAL_OPTION] as $key) {
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
