<?php
/*
 * The install step page: CMain::IncludeAdminFile() includes it after DoInstall. It shows
 * the reason when the install failed, else that the module is installed (outcome.php).
 */

\Bitrix\Main\Localization\Loc::loadMessages(__FILE__);
$orderbridgeOutcome = ['error' => 'ORDERBRIDGE_STEP_INSTALL_ERROR', 'ok' => 'ORDERBRIDGE_STEP_INSTALL_OK'];
require __DIR__ . '/outcome.php';
