<?php
/* Module version, shown in the admin's module list and used by Bitrix's updater. */

$arModuleVersion = [
	'VERSION' => '0.1.0',
	'VERSION_DATE' => '2026-03-13 00:00:00',
];
