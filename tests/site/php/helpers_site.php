<?php
/*
 * Helpers of the installer, queue and backfill tests: a site with the sale module (its
 * install/version.php, as ModuleManager::getVersion reads it) and the module's queue table,
 * and the admin's install and uninstall steps as partner_modules.php runs them.
 */

use Bitrix\Main\ModuleManager;

/** A site with sale installed and the module's queue table: every test starts here. */
function site_fresh_state(): void
{
	\orm_fresh_state();
	ModuleManager::$installed = ['main' => true, 'sale' => true];
	write_module_version('sale', '23.0.0');
	\Orderbridge\QueueTable::createIfMissing(); // as on a site where the module is installed
}

/** DOCUMENT_ROOT/bitrix/modules/<module>/install/version.php, as Bitrix's updater leaves it. */
function write_module_version(string $module, string $version): void
{
	$dir = $_SERVER['DOCUMENT_ROOT'] . '/bitrix/modules/' . $module . '/install';
	if (!is_dir($dir)) {
		mkdir($dir, 0777, true);
	}
	file_put_contents($dir . '/version.php', "<?php\n\$arModuleVersion = ['VERSION' => "
		. var_export($version, true) . ", 'VERSION_DATE' => '2026-01-01 00:00:00'];\n");
}

/**
 * Runs one admin step of the installer with $request as the page's request (partner_modules.php
 * has already checked the session token) and returns the step page that IncludeAdminFile showed:
 * ['title', 'file', 'html', 'error' => GetException()'s text or null, 'returned' => false when
 * the step page ended the request].
 */
function admin_step(callable $step, array $request): array
{
	global $APPLICATION;
	$saved = $_REQUEST;
	$_REQUEST = $request + ['sessid' => bitrix_sessid(), 'lang' => 'en', 'id' => 'orderbridge.connector'];
	$returned = null;
	try {
		$returned = $step();
	} catch (\AdminPageDied $e) {
		$returned = false;
	} finally {
		$_REQUEST = $saved;
	}
	$page = end($APPLICATION->pages) ?: ['title' => null, 'file' => null, 'html' => ''];
	$exception = $APPLICATION->GetException();
	return $page + ['error' => $exception ? $exception->GetString() : null, 'returned' => $returned];
}

function run_install(\orderbridge_connector $module): array
{
	return admin_step([$module, 'DoInstall'], ['install' => 'Y']);
}

/** Both uninstall steps: the question (unstep1.php), then the answer with or without savedata. */
function run_uninstall(\orderbridge_connector $module, bool $keep = false): array
{
	admin_step([$module, 'DoUninstall'], ['uninstall' => 'Y']);
	return admin_step([$module, 'DoUninstall'], ['uninstall' => 'Y', 'step' => '2'] + ($keep ? ['savedata' => 'Y'] : []));
}
