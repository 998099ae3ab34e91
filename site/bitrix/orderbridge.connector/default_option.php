<?php
/*
 * Default values of the module's settings (Bitrix reads this file for Option::get
 * when a setting was never saved). Secrets have no default on purpose.
 */

$orderbridge_default_option = [
	'url' => '',
	'signing_secret' => '',
	'site_id' => '',
	'timeout' => '2',
	'person_types' => '{}',
	'b24_portal_url' => '', // learnt from the deal URLs orderbridge sends to the status endpoint
];
